"""Test helpers: real Prefect server and serve subprocesses (see ``prefect_server``)."""
