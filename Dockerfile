# syntax=docker/dockerfile:1
# The kubectl-aicr agent image (ghcr.io/kubectl-aicr/kubectl-aicr:v<version>, the default of `snapshot --image`).
#
# It carries the same package and the same locked, pure-Python dependencies as the zipapp that build.sh makes:
# requirements.lock (hash-checked), PyYAML built from its sdist without libyaml, our own wheel from this tree.
# pip installs them into the venv /opt/aicr, whose bin/ is first on PATH, so `kubectl-aicr` is the console
# script declared in setup.cfg. The agent Job runs exactly that: command ["kubectl-aicr", "agent"]
# (kubectl_aicr/deploy/spec.py AGENT_COMMAND), overriding ENTRYPOINT.
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 \
#     -t ghcr.io/kubectl-aicr/kubectl-aicr:v0.1.0 .
#
# Root, deliberately: the agent reads the host through the mounts the Job gives it (systemctl talks to the host's
# systemd over /run/systemd/private, which only root may use; /proc/driver/nvidia; /etc/os-release) and runs in
# the host PID namespace. The Job runs it privileged with runAsUser 0; there is no unprivileged mode to offer.
# Pure Python means no compiler on any architecture: the arm64 build under QEMU only copies files.

ARG PYTHON_VERSION=3.12
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

# ---------------------------------------------------------------- build: wheels, then the venv
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements-build.lock requirements.lock ./
# The exact files of requirements.lock: py3-none-any wheels (pip may pick nothing else: --platform any), and
# PyYAML's sdist, built here without its C extension, as build.sh does.
RUN python -m pip install --no-deps --require-hashes --only-binary=:all: -r requirements-build.lock \
 && PYYAML_FORCE_LIBYAML=0 python -m pip download --no-deps --require-hashes --no-build-isolation --dest /dl \
      --only-binary=:all: --no-binary=pyyaml \
      --platform any --implementation py --abi none --python-version 3.10 -r requirements.lock \
 && mkdir /wheels && cp /dl/*.whl /wheels/ \
 && PYYAML_FORCE_LIBYAML=0 python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /dl/*.tar.gz
COPY setup.cfg pyproject.toml README.md LICENSE ./
COPY kubectl_aicr ./kubectl_aicr
COPY collector ./collector
COPY tools/bundle.py ./tools/bundle.py
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python tools/bundle.py check-compiled /wheels \
 && python -m venv --without-pip /opt/aicr \
 && python -m pip --python /opt/aicr/bin/python install --no-index --no-deps /wheels/*.whl \
 && python tools/bundle.py check-requirements \
      "$(/opt/aicr/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" kubectl-aicr

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE}
# Keep the default equal to kubectl_aicr.__version__ (a test checks); CI passes it explicitly.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubectl-aicr" \
      org.opencontainers.image.description="kubectl-aicr agent: captures a GPU node's configuration into a Snapshot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kubectl-aicr/kubectl-aicr" \
      org.opencontainers.image.licenses="Apache-2.0"
# systemctl for the systemd collector (it queries the host's systemd through the mounted /run/systemd).
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/aicr /opt/aicr
# NVIDIA_*: with the NVIDIA container runtime (GPU Operator), inject nvidia-smi and NVML into the agent without
# claiming a GPU; elsewhere they are inert and the collector reports nvidia-smi as unavailable.
ENV PATH=/opt/aicr/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
# The label and the package must agree: fail the build otherwise.
RUN test "$(kubectl-aicr version --short)" = "${VERSION}"
USER 0:0
ENTRYPOINT ["kubectl-aicr"]
CMD ["--help"]
