# syntax=docker/dockerfile:1
# pecr-controller image. Build from the repository root:
#   docker build -f deploy/docker/controller.Dockerfile -t pecr-controller .

FROM rust:1.95-bookworm AS builder
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# target/ is a cache mount (shared by the three images), so the binary is
# copied out in the same step.
RUN --mount=type=cache,id=pecr-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pecr-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=pecr-cargo-target,target=/src/target \
    cargo build --release --locked -p pecr-controller --features rlm \
 && install -D -m 0755 target/release/pecr-controller /out/pecr-controller

FROM debian:bookworm-slim
# curl is only for the compose healthcheck (GET /healthz); python3 runs the
# RLM bridge when PECR_CONTROLLER_ENGINE=rlm.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pecr \
 && useradd --system --uid 10001 --gid pecr --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin pecr
# The controller is non-privileged: no corpus, no policy bundle, no database.
WORKDIR /app
COPY --from=builder /out/pecr-controller /usr/local/bin/pecr-controller
# The RLM bridge and the vendored RLM package it imports (found beside the
# script, as <script_dir>/vendor/rlm).
COPY scripts/rlm/pecr_rlm_bridge.py /usr/local/share/pecr/pecr_rlm_bridge.py
COPY vendor/rlm /usr/local/share/pecr/vendor/rlm
USER pecr:pecr
# HTTP edge (PECR_CONTROLLER_BIND_ADDR) and gRPC (PECR_CONTROLLER_GRPC_ADDR).
# Both default to loopback; set them to 0.0.0.0:<port> in a container.
EXPOSE 8081 50052
ENTRYPOINT ["/usr/local/bin/pecr-controller"]
