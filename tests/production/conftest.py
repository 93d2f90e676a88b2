"""The production topology (tests/production): everything each test needs is built by its
module's own fixture (a Prefect server and the app database on PostgreSQL, a work pool,
`prefect deploy`, workers), so nothing is shared here."""
