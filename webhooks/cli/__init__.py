"""The ``webhooks`` management command (also ``python -m webhooks``).

Unix habits: ``--help`` everywhere, ``--json`` on listings, errors on stderr in one
sentence, exit 0 ok, 1 failed, 2 usage or bad input.
"""
from __future__ import annotations

import sys
from typing import Any

import click
import redis

from ..errors import NotFound, PublishError, ValidationError, WebhooksError
from .common import cli

from . import subs, dead, ops, secrets  # noqa: E402,F401  (register the commands)
from . import listen, metrics, trigger  # noqa: E402,F401  (issue 12: listen, metrics, trigger)

__all__ = ["main", "cli"]


def main(argv: list[str] | None = None, prog_name: str = "webhooks", command: click.Command | None = None) -> Any:
    """Run the CLI (or one of its ``command``s); map our errors to one plain sentence on stderr
    and an exit code. ``prog_name`` is what help and usage lines call it (``manage.py webhooks``
    under Django)."""
    try:
        return (command or cli).main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (NotFound, PublishError, WebhooksError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except redis.RedisError as exc:
        click.echo(f"error: cannot reach Redis ({type(exc).__name__}); check WEBHOOKS_REDIS_URL", err=True)
        sys.exit(1)
