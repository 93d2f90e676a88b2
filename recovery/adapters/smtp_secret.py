"""The SMTP password in a Prefect Secret block (`recovery smtp set-secret NAME`), read by
recovery.adapters.mail when `RECOVERY_SMTP_SECRET_BLOCK` names it."""

from __future__ import annotations

import re

from models.errors import InvalidInput
from recovery.adapters import prefect_api

_BLOCK_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def save_smtp_secret(name: str, password: str) -> str:
    """Store the SMTP password in a Prefect Secret block named `name` (replacing its
    value); returns the name. Set `RECOVERY_SMTP_SECRET_BLOCK=<name>` where mail is sent."""
    name = name.strip()
    if not _BLOCK_NAME.match(name):
        raise InvalidInput("name", f"'{name}' is not a block name: use lowercase letters, "
                                   "digits and dashes")
    if not password:
        raise InvalidInput("password", "is empty")
    prefect_api.check_server()
    from prefect.blocks.system import Secret

    Secret(value=password).save(name, overwrite=True)
    return name


def load_smtp_secret(name: str) -> str:
    """The password held by the Secret block (what recovery.adapters.mail sends with)."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    except ValueError as exc:
        raise RuntimeError(f"Secret block '{name}' not found on the Prefect server "
                           f"(`recovery smtp set-secret {name}`)") from exc
    # called from synchronous code only, where Prefect's dispatch returns the block itself
    assert isinstance(block, Secret), "load_smtp_secret is called outside an event loop"
    return str(block.get())
