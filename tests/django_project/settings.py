"""Settings of the test Django project: chat-webhooks configured from ``WEBHOOKS``, not the
environment (the tests pass the Redis URL as DJANGO_TEST_WEBHOOKS_REDIS_URL)."""
from __future__ import annotations

import os

SECRET_KEY = "test-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "webhooks.contrib.django", "tests.django_project.chat"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("DJANGO_TEST_DB", os.path.join(os.path.dirname(__file__), "db.sqlite3"))}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

WEBHOOKS = {
    "REDIS_URL": os.environ.get("DJANGO_TEST_WEBHOOKS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "PUBLISH_TIMEOUT_S": 2,
}
