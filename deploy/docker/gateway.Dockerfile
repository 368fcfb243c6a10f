# pecr-gateway image. Build from the repository root (BuildKit):
#   docker build -f deploy/docker/gateway.Dockerfile -t pecr-gateway .
# Base images are pinned by tag and digest; docs/decisions.md ("Images and
# docker compose") says where the digests come from and how to move them.

FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# target/ is a cache mount (shared by the three images), so the binaries are
# copied out in the same step. pecr-probe is the image's health check.
RUN --mount=type=cache,id=pecr-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pecr-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=pecr-cargo-target,target=/src/target \
    cargo build --release --locked -p pecr-gateway -p pecr-probe \
 && install -D -m 0755 target/release/pecr-gateway /out/pecr-gateway \
 && install -D -m 0755 target/release/pecr-probe /out/pecr-probe

# Distroless: glibc, libgcc, CA certificates (OIDC and OTLP over https) and
# tzdata; no shell, no package manager, no compiler.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
# Data files sit under /app, owned by root and read-only for the service user,
# so the repo-relative defaults fixtures/fs_corpus and opa/bundle resolve.
WORKDIR /app
COPY fixtures/fs_corpus /app/fixtures/fs_corpus
COPY opa/bundle /app/opa/bundle
COPY --from=builder /out/pecr-gateway /out/pecr-probe /usr/local/bin/
# Numeric, so a kubelet with runAsNonRoot can verify it (distroless "nonroot").
USER 65532:65532
# HTTP edge (PECR_BIND_ADDR) and gRPC (PECR_GATEWAY_GRPC_ADDR). Both default to
# loopback; set them to 0.0.0.0:<port> when running in a container.
EXPOSE 8080 50051
# Exec form (there is no shell). The probe asks 127.0.0.1:8080/readyz, which
# answers whether the bind address is loopback or 0.0.0.0; a service moved to
# another HTTP port needs the health check's port changed with it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/pecr-probe", "8080"]
ENTRYPOINT ["/usr/local/bin/pecr-gateway"]
