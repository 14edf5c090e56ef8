"""A minimal Django project (SQLite) that uses chat-webhooks as a chat backend would."""
