"""The `recovery` command: one module per sub-command group, assembled in `app`."""

from recovery.cli.app import app, main

__all__ = ["app", "main"]
