"""Run the ``webhooks`` click CLI from a Django management command, unchanged."""
from __future__ import annotations

import argparse
import contextlib
from typing import Any, Sequence

from django.core.management.base import BaseCommand, CommandError, CommandParser

__all__ = ["CliCommand"]

_DJANGO_GLOBAL = ("--settings", "--pythonpath")


def strip_django_options(argv: Sequence[str]) -> list[str]:
    """Drop --settings/--pythonpath (manage.py has applied them already)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_GLOBAL:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_GLOBAL)):
            out.append(arg)
    return out


class _PassThroughParser(CommandParser):
    """Hands every argument to the click CLI untouched (for ``call_command``)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        return argparse.Namespace(args=list(args or []), verbosity=1, settings=None, pythonpath=None, traceback=False,
                                  no_color=False, force_color=False, skip_checks=True)


class CliCommand(BaseCommand):
    """A management command that is (a part of) the ``webhooks`` CLI: same options, exit codes, --json."""

    prefix: tuple[str, ...] = ()
    requires_system_checks: list[str] = []

    def cli_args(self, args: list[str]) -> list[str]:
        return [*self.prefix, *args]

    def prog_name(self, argv0: str, name: str) -> str:
        return f"{argv0.rsplit('/', 1)[-1]} {name}"

    def run_from_argv(self, argv: list[str]) -> None:
        """``python manage.py NAME ARGS``: exactly ``webhooks [PREFIX] ARGS`` (exits with its code)."""
        from webhooks.cli import main

        main(self.cli_args(strip_django_options(argv[2:])), prog_name=self.prog_name(argv[0], argv[1]))
        raise SystemExit(0)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return _PassThroughParser(prog=f"{prog_name} {subcommand}", add_help=False)

    def handle(self, *args: str, **options: Any) -> None:
        """``call_command(NAME, *ARGS)``: output to the command's stdout/stderr; a non-zero exit
        raises CommandError with that return code."""
        from webhooks.cli import main

        with contextlib.redirect_stdout(self.stdout._out), contextlib.redirect_stderr(self.stderr._out):
            try:
                main(self.cli_args(list(args)), prog_name=f"manage.py {self.prefix[0] if self.prefix else 'webhooks'}")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                if code:
                    raise CommandError(f"webhooks exited with status {code}", returncode=code) from None
