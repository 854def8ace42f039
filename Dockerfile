# The mtrobust image for the Kubernetes Indexed Job (docs/cluster/k8s-indexed-job.yaml): the binary
# and the shared libraries of the torch==2.11.0 wheel (libtorch, CUDA 13, cuDNN) on Debian trixie.
# The base image comes from the Debian archive alone (no image registry needed):
#
#   sudo bash scripts/container-base.sh        # debootstrap + podman import → mtrobust-base:trixie
#   podman build -t mtrobust:0.1 .             # or docker build; see docs/SCALE-OUT.md
#
# The build reaches the Debian archive, PyPI (the wheel, about 3 GB) and crates.io.
ARG BASE=mtrobust-base:trixie

FROM ${BASE} AS build
# Debian trixie's rustc-web/cargo-web (1.96) builds the crate; its plain rustc (1.85) is older than
# the dependencies need (rusqlite: 1.89).
# A site whose proxy re-signs TLS adds its CA by mounting it for the build (docs/SCALE-OUT.md):
#   podman build -v /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro …
RUN apt-get update \
 && apt-get install -y --no-install-recommends rustc-web cargo-web g++ python3 python3-venv ca-certificates patchelf \
 && rm -rf /var/lib/apt/lists/* \
 && update-ca-certificates
# pip's own CA bundle would not hold such a CA; the system's does (and every public one).
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
# libtorch exactly as scripts/setup.sh installs it, and the crates, each in a layer of its own that a
# change to the sources does not invalidate.
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh && rm -rf /root/.cache/pip
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && touch src/lib.rs src/main.rs benches/passes.rs && cargo fetch --locked && rm -rf src benches
COPY . .
RUN cargo build --release --locked --bin mtrobust
# The wheel's libraries keep their layout (each finds the others through $ORIGIN/../../nvidia/...);
# the binary is pointed at them in place of the build tree's .venv. Headers, static archives and
# the Python bindings are not needed to run.
RUN site=$(dirname "$(readlink -f .venv/libtorch)") \
 && mkdir -p /opt/mtrobust/bin /opt/mtrobust/site-packages/torch \
 && cp -a "$site/torch/lib" /opt/mtrobust/site-packages/torch/ \
 && cp -a "$site/nvidia" /opt/mtrobust/site-packages/ \
 && rm -f /opt/mtrobust/site-packages/torch/lib/libtorch_python.so \
 && find /opt/mtrobust/site-packages/nvidia \( -name include -type d -prune -o -name '*.a' \) -exec rm -rf {} + \
 && cp target/release/mtrobust /opt/mtrobust/bin/ \
 && patchelf --set-rpath /opt/mtrobust/site-packages/torch/lib /opt/mtrobust/bin/mtrobust

FROM ${BASE}
COPY --from=build /opt/mtrobust /opt/mtrobust
# Fails the build when a library is missing; libcuda comes from the node's driver at run time.
RUN ln -s /opt/mtrobust/bin/mtrobust /usr/local/bin/mtrobust \
 && ! ldd /opt/mtrobust/bin/mtrobust | grep 'not found' \
 && mtrobust --version
ENV MTROBUST_DEVICE=auto
WORKDIR /work
CMD ["mtrobust", "--help"]
