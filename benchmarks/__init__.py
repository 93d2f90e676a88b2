"""Benchmarks at provider-group scale (issue 6). Not part of the test command.

    python -m benchmarks.run small|large|huge [--db sqlite|postgres]

See benchmarks/RESULTS.md for figures and how to reproduce them.
"""
