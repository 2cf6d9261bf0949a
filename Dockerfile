# syntax=docker/dockerfile:1
# One image for every role: `receiver`, `worker` or `all` is the command.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.image.json ./
# The product only: tsconfig.image.json compiles src/ and workers/; dev/ (demo, stand-in, local stack) stays out.
COPY src ./src
COPY workers ./workers
# Lua scripts are read next to the compiled code, as `npm run build` copies them.
RUN npx tsc -p tsconfig.image.json \
  && (cd src && find . -name '*.lua' -exec cp --parents {} ../dist/src/ \;) \
  && npm prune --omit=dev --ignore-scripts

# kustomize from its official image, pinned to the version kubectl 1.32 embeds.
FROM registry.k8s.io/kustomize/kustomize:v5.5.0 AS kustomize

# Helm 4, which renders the repositories' charts (PLUMBLINE_HELM), built from its Go module as the local
# stack builds the one the tests use: the same go.mod and go.sum (dev/local-stack/go/helm4), static,
# -trimpath, and `helm version` reporting the pinned version. Cross-compiled on the build machine.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS helm
ARG TARGETOS TARGETARCH
WORKDIR /helm4
COPY dev/local-stack/go/helm4/go.mod dev/local-stack/go/helm4/go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
  version="$(go list -m -f '{{.Version}}' helm.sh/helm/v4)" \
  && CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${version}" \
    -o /out/helm helm.sh/helm/v4/cmd/helm

FROM node:20-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends git tini ca-certificates util-linux \
  && rm -rf /var/lib/apt/lists/*
COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize
COPY --from=helm /out/helm /usr/local/bin/helm
RUN ["/usr/local/bin/helm", "version", "--short"]
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# HOME on the writable /tmp: the root filesystem is read-only in the chart. The worker runs helm with a
# fresh HOME and helm homes (cache, config, data) of its own under /tmp for each render.
ENV NODE_ENV=production HOME=/tmp PLUMBLINE_HELM=/usr/local/bin/helm
# The `node` user (uid 1000) owns nothing in /app: the code is read-only to the process that runs it.
USER 1000:1000
EXPOSE 3000
# tini forwards SIGTERM so the receiver and workers shut down gracefully, and reaps git's children.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/plumbline.js"]
CMD ["receiver"]
