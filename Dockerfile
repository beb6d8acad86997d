# syntax=docker/dockerfile:1
# rushgate container image.
#
#   docker build -t rushgate:local .
#   docker run --rm -p 8000:8000 rushgate:local        # embedded default (SQLite in the data dir)
#
# Production configuration comes from RUSHGATE_* environment variables (see README.md);
# deploy/compose.yaml and deploy/k8s/ show complete stacks.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the locked dependencies and the rushgate package -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/rushgate
WORKDIR /src
# Dependencies first (their own layer, rebuilt only when the lock changes), every file
# checked against the lock's hashes: the runtime lock, the versions the tests ran without
# the test tools (scripts/lock writes both).
COPY requirements-runtime.lock ./
RUN /opt/rushgate/bin/pip install --require-hashes --no-deps -r requirements-runtime.lock
# Then the package itself, without dependencies (they are all locked above).
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/rushgate/bin/pip install --no-deps . \
    && /opt/rushgate/bin/python -m compileall -q /opt/rushgate/lib

# --- runtime: the virtualenv and a non-root user, nothing else -----------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/rushgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUSHGATE_DATA_DIR=/var/lib/rushgate
RUN groupadd --system --gid 10001 rushgate \
    && useradd --system --uid 10001 --gid rushgate --home-dir /var/lib/rushgate \
       --shell /usr/sbin/nologin rushgate \
    && install -d -o rushgate -g rushgate -m 0750 /var/lib/rushgate /var/lib/rushgate/documents
COPY --from=build /opt/rushgate /opt/rushgate
COPY LICENSE /usr/share/doc/rushgate/LICENSE
WORKDIR /var/lib/rushgate
USER 10001:10001
EXPOSE 8000
# Liveness only (/healthz touches nothing); readiness (/readyz: database, Redis, draining) is
# for load balancers and orchestrators. No curl in the image: the standard library does it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `rushgate serve` applies migrations (under an advisory lock), bootstraps the configured
# admin, then serves; SIGTERM drains gracefully (up to 30 s).
CMD ["rushgate", "serve", "--host", "0.0.0.0", "--port", "8000"]
