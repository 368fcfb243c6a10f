# syntax=docker/dockerfile:1
# pecr-gateway image. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t pecr-gateway .

FROM rust:1.95-bookworm AS builder
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# target/ is a cache mount (shared by the three images), so the binary is
# copied out in the same step.
RUN --mount=type=cache,id=pecr-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pecr-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=pecr-cargo-target,target=/src/target \
    cargo build --release --locked -p pecr-gateway \
 && install -D -m 0755 target/release/pecr-gateway /out/pecr-gateway

FROM debian:bookworm-slim
# curl is only for the compose healthcheck (GET /healthz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pecr \
 && useradd --system --uid 10001 --gid pecr --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin pecr
# Data files sit under /app, owned by root and read-only for the service user,
# so the repo-relative defaults fixtures/fs_corpus and opa/bundle resolve.
WORKDIR /app
COPY fixtures/fs_corpus /app/fixtures/fs_corpus
COPY opa/bundle /app/opa/bundle
COPY --from=builder /out/pecr-gateway /usr/local/bin/pecr-gateway
USER pecr:pecr
# HTTP edge (PECR_BIND_ADDR) and gRPC (PECR_GATEWAY_GRPC_ADDR). Both default to
# loopback; set them to 0.0.0.0:<port> when running in a container.
EXPOSE 8080 50051
ENTRYPOINT ["/usr/local/bin/pecr-gateway"]
