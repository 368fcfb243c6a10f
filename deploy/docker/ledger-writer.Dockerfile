# syntax=docker/dockerfile:1
# pecr-ledger-writer image. Build from the repository root:
#   docker build -f deploy/docker/ledger-writer.Dockerfile -t pecr-ledger-writer .

FROM rust:1.95-bookworm AS builder
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# target/ is a cache mount (shared by the three images), so the binary is
# copied out in the same step. The SQL in migrations/ is compiled into the
# binary, so the runtime stage needs no copy of it.
RUN --mount=type=cache,id=pecr-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pecr-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=pecr-cargo-target,target=/src/target \
    cargo build --release --locked -p pecr-ledger-writer \
 && install -D -m 0755 target/release/pecr-ledger-writer /out/pecr-ledger-writer

FROM debian:bookworm-slim
# curl is only for the compose healthcheck (GET /healthz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pecr \
 && useradd --system --uid 10001 --gid pecr --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin pecr
WORKDIR /app
COPY --from=builder /out/pecr-ledger-writer /usr/local/bin/pecr-ledger-writer
USER pecr:pecr
# HTTP (PECR_LEDGER_HTTP_ADDR) and gRPC (PECR_LEDGER_GRPC_ADDR). Both default
# to loopback; set them to 0.0.0.0:<port> in a container. Needs PECR_DB_URL.
EXPOSE 8082 50053
ENTRYPOINT ["/usr/local/bin/pecr-ledger-writer"]
