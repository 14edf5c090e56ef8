"""``webhooks secrets encrypt`` and ``webhooks secrets check``: secrets at rest."""
from __future__ import annotations

import json
from dataclasses import asdict

import click

from .common import cli, json_option

__all__ = ["secrets_group"]


@cli.group("secrets")
def secrets_group() -> None:
    """Subscription secrets at rest (WEBHOOKS_ENCRYPTION_KEY)."""


@secrets_group.command("encrypt")
@json_option
def encrypt_cmd(as_json: bool) -> None:
    """Encrypt every stored secret (current and rotated-out, every account) with the newest key.

    Plain secrets are encrypted, ones under an older key (WEBHOOKS_ENCRYPTION_KEY=NEW,OLD) are
    re-encrypted with NEW, the rest are left alone: running it again changes nothing.
    """
    from ..secretsweep import encrypt_stored

    result = encrypt_stored()
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    click.echo(f"{result.encrypted} secret(s) encrypted with the newest key, {result.unchanged} already were "
               f"({result.subscriptions} subscription(s) in {result.accounts} account(s))")


@secrets_group.command("check")
@json_option
def check_cmd(as_json: bool) -> None:
    """Count stored secrets still in plain text (every account); exit 1 if there are any."""
    from ..secretsweep import count_plaintext

    plain = count_plaintext()
    if as_json:
        click.echo(json.dumps({"plaintext_secrets": plain}))
    elif plain:
        click.echo(f"{plain} secret(s) stored in plain text: set WEBHOOKS_ENCRYPTION_KEY and run `webhooks secrets encrypt`")
    else:
        click.echo("no secret is stored in plain text")
    if plain:
        raise click.exceptions.Exit(1)
