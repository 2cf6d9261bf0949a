//go:build tools

// Package tools pins the OCI registry (CNCF Distribution) for `go build github.com/distribution/distribution/v3/cmd/registry`.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
