# syntax=docker/dockerfile:1
#
# One image per orderflow service, from one parameterised build:
#
#   docker build --build-arg SERVICE=order -t orderflow/order .
#
# SERVICE is order, inventory, payment, shipping or console. The build stage
# compiles the service with cgo (mattn/go-sqlite3) from the whole go.work
# workspace, plus queuectl and a static healthcheck; the runtime stage is
# debian:bookworm-slim (the same glibc as the builder) running as an
# unprivileged user. docker-compose.yml builds all five.

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ARG SERVICE=order
# go.work names the Go release it needs; fetch it if the image is older.
ENV CGO_ENABLED=1 GOTOOLCHAIN=auto GOFLAGS=-trimpath
WORKDIR /src
# The whole workspace: go.work lists every module, and each must be present
# for it to resolve. .dockerignore keeps data, binaries and .git out.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    case "${SERVICE}" in \
      order|inventory|payment|shipping|console) ;; \
      *) echo "SERVICE=${SERVICE}: want order, inventory, payment, shipping or console" >&2; exit 2 ;; \
    esac; \
    mkdir -p /out; \
    go build -ldflags='-s -w' -o "/out/${SERVICE}" "./services/${SERVICE}"; \
    go build -ldflags='-s -w' -o /out/queuectl ./queue/cmd/queuectl; \
    CGO_ENABLED=0 go build -ldflags='-s -w' -o /out/healthcheck ./tools/cmd/healthcheck

FROM ${RUNTIME_IMAGE}
ARG SERVICE=order
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 orderflow \
 && useradd --system --uid 10001 --gid orderflow --home-dir /nonexistent --shell /usr/sbin/nologin orderflow \
 && mkdir -p /data /queue \
 && chown orderflow:orderflow /data /queue
COPY --from=build /out/ /usr/local/bin/
RUN ln -s "/usr/local/bin/${SERVICE}" /usr/local/bin/service
# Named volumes mounted on /data (the service's own database) and /queue
# (the shared SQLite queue) start with this ownership.
ENV SERVICE=${SERVICE} \
    DATA_DIR=/data \
    QUEUE_URL=sqlite:///queue/queue.db
USER orderflow:orderflow
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/service"]
