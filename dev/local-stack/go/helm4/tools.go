//go:build tools

// Package tools pins the Helm 4 command for `go build helm.sh/helm/v4/cmd/helm`.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
