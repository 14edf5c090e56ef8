# One image for the worker, beat and Flower (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY webhooks ./webhooks
COPY workers ./workers
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --home-dir /app webhooks
# Flower's configuration is read from here at run time (--conf=config/flowerconfig.py).
COPY config ./config

# Never root: a delivery worker talks to the internet.
USER webhooks
# The bare command is the production shape (workers/config.py: threads pool, both queues).
CMD ["celery", "-A", "workers", "worker", "-l", "INFO"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "webhooks.liveness", "worker"]
