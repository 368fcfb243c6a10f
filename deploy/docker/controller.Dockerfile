# pecr-controller image. Build from the repository root (BuildKit):
#   docker build -f deploy/docker/controller.Dockerfile -t pecr-controller .
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
    cargo build --release --locked -p pecr-controller -p pecr-probe --features pecr-controller/rlm \
 && install -D -m 0755 target/release/pecr-controller /out/pecr-controller \
 && install -D -m 0755 target/release/pecr-probe /out/pecr-probe

# Distroless with Python 3 (on the same libc and libgcc as the cc image):
# python3 runs the RLM bridge when PECR_CONTROLLER_ENGINE=rlm; no shell, no
# package manager, no compiler.
FROM gcr.io/distroless/python3-debian12:nonroot@sha256:7d1042ce588ab97019fe95c24ffca7bc5a82ccdac572511d5e09bda4435c89c5
# The controller is non-privileged: no corpus, no policy bundle, no database.
WORKDIR /app
COPY --from=builder /out/pecr-controller /out/pecr-probe /usr/local/bin/
# The RLM bridge and the vendored RLM package it imports (found beside the
# script, as <script_dir>/vendor/rlm).
COPY scripts/rlm/pecr_rlm_bridge.py /usr/local/share/pecr/pecr_rlm_bridge.py
COPY vendor/rlm /usr/local/share/pecr/vendor/rlm
# Numeric, so a kubelet with runAsNonRoot can verify it (distroless "nonroot").
USER 65532:65532
# HTTP edge (PECR_CONTROLLER_BIND_ADDR) and gRPC (PECR_CONTROLLER_GRPC_ADDR).
# Both default to loopback; set them to 0.0.0.0:<port> in a container.
EXPOSE 8081 50052
# Exec form (there is no shell). A service moved to another HTTP port needs
# the health check's port changed with it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/pecr-probe", "8081"]
# The base image's entrypoint is python; the controller replaces it.
ENTRYPOINT ["/usr/local/bin/pecr-controller"]
