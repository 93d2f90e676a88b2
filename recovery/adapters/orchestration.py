"""What can go wrong talking to the Prefect server, as the CLI reports it.

Kept apart from `prefect_api` (which raises them) so the CLI can name them without
importing the Prefect client on every start-up.
"""

from __future__ import annotations


class PrefectUnavailable(ConnectionError):
    """What a command needs from Prefect is not there: no server answers, a deployment is
    not served, or a run is not on this server. The message says what and how to start it;
    the CLI prints it as one line (exit 4), keeping whatever was already recorded."""


class PrefectBusy(ConnectionError):
    """The Prefect server answered "busy" (503, e.g. its SQLite database was locked) to
    every retry of Prefect's client (`PREFECT_CLIENT_MAX_RETRIES`, backing off 2, 4, 8,
    ... seconds) and nothing was recorded: the run still waits and the person tries again.
    The CLI prints the message as one line (exit 1)."""
