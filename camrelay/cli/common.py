"""Options shared by the commands that talk to a server, and reading secrets safely."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from camrelay.cli.client import ApiClient

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:8080"


def _api(fn: F, *, required: bool) -> F:
    @click.option("--url", envvar="CAMRELAY_URL", default=DEFAULT_URL, show_default=True,
                  help="camrelay server (env CAMRELAY_URL)")
    @click.option("--token", envvar="CAMRELAY_TOKEN", default=None,
                  help="API token (env CAMRELAY_TOKEN; prefer the variable: argv shows in ps)")
    @click.option("--ca-file", envvar="CAMRELAY_CA_FILE", default=None,
                  type=click.Path(exists=True, dir_okay=False),
                  help="CA certificate for an https server with a private CA")
    @functools.wraps(fn)
    def wrapper(*args: Any, url: str, token: str | None, ca_file: str | None,
                **kwargs: Any) -> Any:
        if not token:
            if required:
                raise click.UsageError("no API token: set CAMRELAY_TOKEN (or --token)")
            return fn(*args, api=None, **kwargs)
        return fn(*args, api=ApiClient(url, token, ca_file=ca_file), **kwargs)

    return wrapper  # type: ignore[return-value]


def api_command(fn: F) -> F:
    """Adds --url/--token/--ca-file and passes an ``ApiClient`` as ``api``."""
    return _api(fn, required=True)


def api_command_or_local(fn: F) -> F:
    """As ``api_command``, but ``api`` is None without a token (for a command that can
    also work on the store directly, and checks that it does)."""
    return _api(fn, required=False)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


def read_secret(*, stdin: bool, env: str | None, prompt: str, confirm: bool = False
                ) -> str | None:
    """A secret from stdin (``--password-stdin``), an environment variable, or a prompt."""
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise click.UsageError("--password-stdin: nothing on standard input")
        return value
    if env and os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        return None
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
