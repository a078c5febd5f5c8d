# syntax=docker/dockerfile:1
# The biss_pipeline code location: a Dagster gRPC server on port 4000. The same image runs the
# Kubernetes run pods (K8sRunLauncher starts them from the code server's image), see
# docs/deployment.md and deploy/helm/values.yaml.
#
#   docker build -t biss-pipeline:0.1.0 .                    # with dagster-k8s (the default)
#   docker build --build-arg EXTRAS= -t biss-pipeline:0.1.0 .  # without it (not on Kubernetes)

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Optional dependency group(s) from pyproject.toml; `k8s` because the run pods load the chart's
# instance config, which names dagster_k8s.K8sRunLauncher.
ARG EXTRAS=k8s
WORKDIR /src
COPY pyproject.toml README.md ./
COPY biss_pipeline ./biss_pipeline
# A regular (non-editable) install into a venv of its own, so the runtime stage copies one
# directory and no build leftovers. Every dependency ships manylinux wheels: no compiler needed.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install ".${EXTRAS:+[${EXTRAS}]}"

FROM python:3.11-slim
# The installed package lives in site-packages, so the project-relative defaults of
# biss_pipeline/domain/paths.py (data/ and config/ next to the sources) do not apply: point them at
# a writable data directory and at the shipped mapping file. In production the mapping is
# usually the Google Sheet (BISS_MAPPING_SOURCE=gsheet) or a file mounted over this one.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BISS_DATA_DIR=/opt/biss/data \
    BISS_MAPPING_FILE=/opt/biss/config/mapping.yaml
# A fixed numeric uid: Kubernetes can only verify `runAsNonRoot` against a numeric USER.
RUN groupadd --system --gid 10001 biss \
    && useradd --system --uid 10001 --gid biss --home-dir /opt/biss --no-create-home biss \
    && mkdir -p /opt/biss/data /opt/dagster/dagster_home \
    && chown biss:biss /opt/biss/data /opt/dagster/dagster_home
COPY --from=build /opt/venv /opt/venv
COPY config/mapping.yaml /opt/biss/config/mapping.yaml
WORKDIR /opt/biss
USER 10001:10001
EXPOSE 4000
# `defs` is the Definitions object biss_pipeline/definitions.py builds at import.
CMD ["dagster", "api", "grpc", "-m", "biss_pipeline.definitions", "-a", "defs", "--host", "0.0.0.0", "--port", "4000"]
