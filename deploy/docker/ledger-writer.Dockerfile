# pecr-ledger-writer image. Build from the repository root (BuildKit):
#   docker build -f deploy/docker/ledger-writer.Dockerfile -t pecr-ledger-writer .
# Base images are pinned by tag and digest; docs/decisions.md ("Images and
# docker compose") says where the digests come from and how to move them.

FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# target/ is a cache mount (shared by the three images), so the binaries are
# copied out in the same step. The SQL in migrations/ is compiled into the
# binary, so the runtime stage needs no copy of it. pecr-probe is the
# image's health check.
RUN --mount=type=cache,id=pecr-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pecr-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=pecr-cargo-target,target=/src/target \
    cargo build --release --locked -p pecr-ledger-writer -p pecr-probe \
 && install -D -m 0755 target/release/pecr-ledger-writer /out/pecr-ledger-writer \
 && install -D -m 0755 target/release/pecr-probe /out/pecr-probe

# Distroless: glibc, libgcc, CA certificates and tzdata; no shell, no package
# manager, no compiler.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
WORKDIR /app
COPY --from=builder /out/pecr-ledger-writer /out/pecr-probe /usr/local/bin/
# Numeric, so a kubelet with runAsNonRoot can verify it (distroless "nonroot").
USER 65532:65532
# HTTP (PECR_LEDGER_HTTP_ADDR) and gRPC (PECR_LEDGER_GRPC_ADDR). Both default
# to loopback; set them to 0.0.0.0:<port> in a container. Needs PECR_DB_URL.
EXPOSE 8082 50053
# Exec form (there is no shell): ready once migrations are current and the
# database answers. A service moved to another HTTP port needs the health
# check's port changed with it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/pecr-probe", "8082"]
ENTRYPOINT ["/usr/local/bin/pecr-ledger-writer"]
