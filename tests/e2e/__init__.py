"""End-to-end tests: a real Prefect server, `recovery serve`, a mail sink, the real CLI."""
