"""Integrations with frameworks, each an optional extra (``pip install chat-webhooks[django]``)."""
