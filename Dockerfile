# binance-exporter image: the exporter and binance-report; a second target, the simulator.
#
#   docker build -t binance-exporter .
#   docker run --rm -p 8080:8080 binance-exporter                    # metrics on :8080/metrics
#   docker build --target simulator -t binance-simulator .           # the offline Binance
#   docker run --rm -p 8090:8090 binance-simulator --host 0.0.0.0 --port 8090
#
# The production image (the last stage, the default target) holds the collector package
# only; the simulator, a test double, is built into its own image from the same file.
# Another base (a mirror, or a local stand-in when Docker Hub is out of reach) is given with
# --build-arg PYTHON_IMAGE=...; every stage uses it, so a venv finds the same interpreter.
# Configure the exporter with BINANCE_* environment variables: the health check reads
# BINANCE_LISTEN_PORT, BINANCE_LISTEN_ADDRESS and BINANCE_WEB_CONFIG_FILE to find the
# landing page.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- deps: a venv with the pinned runtime dependencies ----
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# dependencies first: this layer is reused until requirements.txt changes
COPY requirements.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt
COPY setup.py setup.cfg README.md ./

# ---- builder: the collector package into the venv ----
FROM deps AS builder
COPY collector ./collector
# --use-pep517: build a wheel and install it, whatever pip the base has; --no-deps: the pins
# above are the whole dependency set. Then drop the installers: nothing needs them at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --use-pep517 ./ \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip

# ---- simulator-builder: the simulator package (it imports nothing from collector) ----
FROM deps AS simulator-builder
COPY binance_simulator ./binance_simulator
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --use-pep517 ./ \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip

# ---- runtime: the interpreter of the base and an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 exporter \
 && useradd --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --no-log-init exporter
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# ---- simulator: docker build --target simulator (compose's offline profile) ----
FROM runtime AS simulator
LABEL org.opencontainers.image.title="binance-simulator" \
      org.opencontainers.image.description="An offline Binance Spot REST API for tests and demos" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=simulator-builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8090 8091
ENTRYPOINT ["binance-simulator"]
CMD ["--host", "0.0.0.0", "--port", "8090", "--ws-port", "8091"]

# ---- final (the default target): the exporter ----
FROM runtime AS exporter
LABEL org.opencontainers.image.title="binance-exporter" \
      org.opencontainers.image.description="Prometheus exporter for public Binance Spot market data" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080
# binance-healthcheck (collector/healthcheck.py): GET / (the landing page: it never calls
# Binance) at BINANCE_LISTEN_ADDRESS and BINANCE_LISTEN_PORT (:: and 0.0.0.0: 127.0.0.1),
# over TLS when BINANCE_WEB_CONFIG_FILE asks for it; a 401 for want of a password is an
# answer too (docs/security.md)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["binance-healthcheck"]
ENTRYPOINT ["binance-exporter"]
