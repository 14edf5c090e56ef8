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

    path: tuple[str, ...] = ()  # the CLI command this runs: () the whole CLI, ("dead-letters", "replay") one
    requires_system_checks: list[str] = []

    def cli_args(self, args: list[str]) -> list[str]:
        return args

    def command(self) -> Any:
        from webhooks.cli import cli

        command = cli
        for name in self.path:
            command = command.commands[name]  # type: ignore[attr-defined]
        return command

    def _run(self, args: list[str], prog_name: str) -> None:
        from webhooks.cli import main

        main(args, prog_name=f"{prog_name.rsplit('/', 1)[-1]}", command=self.command())

    def run_from_argv(self, argv: list[str]) -> None:
        """``python manage.py NAME ARGS``: exactly ``webhooks [PATH] ARGS`` (exits with its code)."""
        self._run(self.cli_args(strip_django_options(argv[2:])), f"{argv[0]} {argv[1]}")
        raise SystemExit(0)

    def print_help(self, prog_name: str, subcommand: str) -> None:
        """``manage.py help NAME``: the CLI's own help."""
        try:
            self._run(["--help"], f"{prog_name} {subcommand}")
        except SystemExit:
            pass

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return _PassThroughParser(prog=f"{prog_name} {subcommand}", add_help=False)

    def handle(self, *args: str, **options: Any) -> None:
        """``call_command(NAME, *ARGS)``: output to the command's stdout/stderr; a non-zero exit
        raises CommandError with that return code."""
        with contextlib.redirect_stdout(self.stdout._out), contextlib.redirect_stderr(self.stderr._out):
            try:
                self._run(self.cli_args(list(args)), f"manage.py {self.__module__.rsplit('.', 1)[-1]}")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                if code:
                    raise CommandError(f"webhooks exited with status {code}", returncode=code) from None
