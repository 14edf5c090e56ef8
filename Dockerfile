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
CMD ["celery", "-A", "workers", "worker", "-P", "threads", "-c", "32", "-Q", "deliveries,retries", "-l", "INFO"]
