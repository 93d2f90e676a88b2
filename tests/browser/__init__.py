"""Browser tests: the real Prefect UI in Debian's chromium, driven by Playwright."""
