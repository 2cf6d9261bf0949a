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

FROM node:20-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends git tini ca-certificates util-linux \
  && rm -rf /var/lib/apt/lists/*
COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# HOME on the writable /tmp: the root filesystem is read-only in the chart.
ENV NODE_ENV=production HOME=/tmp
# The `node` user (uid 1000) owns nothing in /app: the code is read-only to the process that runs it.
USER 1000:1000
EXPOSE 3000
# tini forwards SIGTERM so the receiver and workers shut down gracefully, and reaps git's children.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/plumbline.js"]
CMD ["receiver"]
