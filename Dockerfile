# syntax=docker/dockerfile:1

# Images of the manager and of recserve, for users who build with Docker:
#
#   docker build --target manager  -t ghcr.io/recpipeline/manager:dev  .
#   docker build --target recserve -t ghcr.io/recpipeline/recserve:dev .
#
# (--target manager is the default.) `make images` is the Docker-free path:
# go run ./hack/images build writes the same images as tarballs, with the
# same static binaries, entrypoints, user 65532:65532, /tmp, CA bundle and
# labels. Change the two together.
#
# Build arguments: VERSION (tag and version label, also main.version of
# commands that declare it), REVISION (git commit) and CREATED (RFC 3339
# time), e.g.
#   --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#   --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ)

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG TARGETVARIANT=""
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Only the sources of the two commands: bin/ holds large test binaries.
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY runtime/ runtime/
# Static, stripped, path-independent binaries. The linker ignores -X for a
# command that declares no main.version.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    export CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH"; \
    if [ "$TARGETARCH" = arm ]; then export GOARM="${TARGETVARIANT#v}"; fi; \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/manager . && \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/recserve ./runtime/cmd/recserve

# distroless/static:nonroot has what hack/images writes by hand: passwd and
# group with the nonroot user 65532, /tmp (1777), a CA bundle and PATH.
FROM gcr.io/distroless/static:nonroot AS base
ARG VERSION=dev
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.created="$CREATED" \
      org.opencontainers.image.source="https://github.com/recpipeline/recpipeline" \
      org.opencontainers.image.url="https://github.com/recpipeline/recpipeline" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /
USER 65532:65532

FROM base AS recserve
LABEL org.opencontainers.image.title="recserve" \
      org.opencontainers.image.description="The RecPipeline serving runtime: one stage of a recommendation funnel."
COPY --from=builder --chown=65532:65532 --chmod=0755 /out/recserve /recserve
ENTRYPOINT ["/recserve"]

FROM base AS manager
LABEL org.opencontainers.image.title="manager" \
      org.opencontainers.image.description="The RecPipeline operator's manager."
COPY --from=builder --chown=65532:65532 --chmod=0755 /out/manager /manager
ENTRYPOINT ["/manager"]
