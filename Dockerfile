# binance-exporter image: the exporter, plus binance-report and binance-simulator.
#
#   docker build -t binance-exporter .
#   docker run --rm -p 8080:8080 binance-exporter                    # metrics on :8080/metrics
#   docker run --rm --entrypoint binance-simulator binance-exporter --host 0.0.0.0 --port 8090
#
# Another base (a mirror, or a local stand-in when Docker Hub is out of reach) is given with
# --build-arg PYTHON_IMAGE=...; both stages use it, so the venv finds the same interpreter.
# Configure the exporter with BINANCE_* environment variables: the health check reads
# BINANCE_LISTEN_PORT and BINANCE_LISTEN_ADDRESS to find the landing page.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: a venv with the pinned runtime dependencies and the package ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# dependencies first: this layer is reused until requirements.txt changes
COPY requirements.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt
COPY setup.py setup.cfg README.md ./
COPY collector ./collector
# --use-pep517: build a wheel and install it, whatever pip the base has; --no-deps: the pins
# above are the whole dependency set. Then drop the installers: nothing needs them at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --use-pep517 ./ \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip

# ---- final: the interpreter of the base, the venv, an unprivileged user ----
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="binance-exporter" \
      org.opencontainers.image.description="Prometheus exporter for public Binance Spot market data" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 exporter \
 && useradd --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --no-log-init exporter
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080
# GET / (the landing page: it never calls Binance) with the standard library only; the
# default address :: serves IPv4 too (IPv4 alone without IPv6), so 127.0.0.1 answers
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; a = os.environ.get('BINANCE_LISTEN_ADDRESS') or '::'; a = {'0.0.0.0': '127.0.0.1', '::': '127.0.0.1'}.get(a, a); a = '[%s]' % a if ':' in a else a; urllib.request.urlopen('http://%s:%s/' % (a, os.environ.get('BINANCE_LISTEN_PORT') or '8080'), timeout=4).close()"]
ENTRYPOINT ["binance-exporter"]
