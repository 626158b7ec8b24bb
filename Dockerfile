# syntax=docker/dockerfile:1.7
# Two images from one file (docs/deploy.md):
#   docker build --target api    -t diva-serve/api .      slim CPU image: gateway (torch CPU wheels)
#   docker build --target worker -t diva-serve/worker .   CUDA runtime image: training workers
# Both run as an unprivileged user, keep state under DIVA_HOME=/var/lib/diva (a volume) and
# install the project the same way (`pip install .`), so a model folder written by a worker is
# read by the gateway unchanged.

ARG PYTHON_VERSION=3.11
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

# ---------------------------------------------------------------------------------------------
# api-build: a virtualenv with CPU-only torch (no multi-GB CUDA wheels in the gateway image)
FROM python:${PYTHON_VERSION}-slim-bookworm AS api-build
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY state ./state
COPY service ./service
COPY worker ./worker
COPY cli ./cli
RUN pip install --no-cache-dir .

# ---------------------------------------------------------------------------------------------
# api: the FastAPI gateway (embeddings, classify, jobs, exports; optional Triton runtime)
FROM python:${PYTHON_VERSION}-slim-bookworm AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DIVA_HOME=/var/lib/diva DIVA_DEVICE=cpu HF_HOME=/var/lib/diva/hf-cache
RUN useradd --create-home --uid 10001 diva \
    && mkdir -p /var/lib/diva \
    && chown diva:diva /var/lib/diva
COPY --from=api-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/diva
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["diva", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
# worker-build: CUDA torch wheels (they bring their own CUDA libraries; the base image brings
# the runtime and cuDNN the driver pairs with)
FROM ${CUDA_IMAGE} AS worker-build
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu130 \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY state ./state
COPY service ./service
COPY worker ./worker
COPY cli ./cli
RUN pip install --no-cache-dir .

# ---------------------------------------------------------------------------------------------
# worker: one Celery worker per GPU (`diva worker`), prefetch 1, jobs on the `train` queue
FROM ${CUDA_IMAGE} AS worker
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DIVA_HOME=/var/lib/diva DIVA_DEVICE=cuda HF_HOME=/var/lib/diva/hf-cache
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 diva \
    && mkdir -p /var/lib/diva \
    && chown diva:diva /var/lib/diva
COPY --from=worker-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/diva
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "celery -A worker.celery_app inspect ping --timeout 10 --destination diva-1@$(hostname)"]
CMD ["diva", "worker", "--queues", "train"]
