"""The ``camrelay`` command.

Every command but ``init``, ``serve``, ``backup`` and ``restore`` talks to a running
server over its REST API (``CAMRELAY_URL``, ``CAMRELAY_TOKEN``).  Exit codes: 0 done,
1 failed (the message says why, in one line), 2 usage.  The commands live in one module
per area (catalogue, access, relay, ONVIF); this module only gathers them.
"""

from __future__ import annotations

import logging
import sys

import click

from camrelay.errors import CamrelayError
from camrelay.redact import redact_text


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="camrelay")
def cli() -> None:
    """camrelay: camera relay for command centres."""


def _register() -> None:
    from camrelay.cli import admin, catalog

    for module in (admin, catalog):
        for command in module.COMMANDS:
            cli.add_command(command)
    # areas that arrive with their own modules register the same way
    import importlib

    for name in ("access", "relay", "onvif", "cluster", "alarm", "health", "federation"):
        try:
            module = importlib.import_module(f"camrelay.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"camrelay.cli.{name}":
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli.main(args=argv, prog_name="camrelay", standalone_mode=False)
    except click.UsageError as err:
        err.show()
        return 2
    except click.exceptions.Exit as err:
        return int(err.exit_code)
    except click.Abort:
        click.echo("camrelay: aborted", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return 1
    except CamrelayError as err:
        click.echo(f"camrelay: error: {redact_text(err.detail)}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: one line for the technician, the traceback on request
        import os

        if os.environ.get("CAMRELAY_DEBUG"):
            raise
        click.echo(f"camrelay: unexpected error: {type(err).__name__}: "
                   f"{redact_text(str(err))} (set CAMRELAY_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
