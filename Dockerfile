# The notifier gateway. Build: `docker build -t notifier .`; run a cluster: docker-compose.yml,
# documented in docs/operations.md section 12. It needs NATS (NOTIFIER_NATS_URL) and a JWT key.

# The wheel, its delivery path compiled by mypyc (setup.py): half the gateway's Python time per
# delivery. Built where a C compiler is; the image below only installs it. Both stages on one Debian
# release (bookworm), so the compiled modules find the glibc they were built against.
FROM python:3.11-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY build_backend ./build_backend
COPY notifier ./notifier
# The check runs from /, not /src: it must import the installed wheel, not the sources beside it.
RUN NOTIFIER_COMPILE=1 pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && pip install --no-cache-dir --no-deps /wheels/*.whl \
    && cd / && python -c "from notifier.ops.metrics import delivery_compiled; assert delivery_compiled(), 'not compiled'"

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies and the package first, so a change to streams_config/ or clients/ reuses this layer.
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
# Read from the working directory by a non-editable install: stream definitions, /client.js, /console.
COPY streams_config ./streams_config
COPY clients/js ./clients/js
COPY clients/console ./clients/console

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin notifier \
    && mkdir /app/var && chown notifier /app/var
USER notifier

ENV NOTIFIER_HOST=0.0.0.0 \
    NOTIFIER_PORT=8080 \
    NOTIFIER_DATA_DIR=/app/var \
    NOTIFIER_STREAMS_DIR=/app/streams_config \
    NOTIFIER_LOG_FORMAT=json
EXPOSE 8080

# Liveness: /healthz answers while the process serves HTTP. Readiness (/readyz) is for the load
# balancer: it is 503 while NATS is away and from the moment of SIGTERM (NOTIFIER_SHUTDOWN_DELAY).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NOTIFIER_PORT', '8080'), timeout=2)"]

STOPSIGNAL SIGTERM
CMD ["notifier", "serve"]
