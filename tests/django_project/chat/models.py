"""A conversation row, as a chat backend stores it."""
from __future__ import annotations

from django.db import models


class Conversation(models.Model):
    visitor_email = models.CharField(max_length=200)
    ended = models.BooleanField(default=False)

    class Meta:
        app_label = "chat"
