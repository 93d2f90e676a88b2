"""The `recovery` command: one module per sub-command group, assembled in `commands`."""

from recovery.cli.commands import app, main

__all__ = ["app", "main"]
