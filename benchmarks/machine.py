"""The machine a figure was measured on: CPU, cores, RAM, Python, SQLite, PostgreSQL, and
a speed reference (a fixed pure-Python loop, best of five) so figures from different
machines can be compared: the project's 2-core VMs differ by more than 2x between sessions."""

from __future__ import annotations

import os
import platform
import sqlite3
import timeit
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def postgres_version(url: str | None) -> str | None:
    if not url:
        return None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except Exception as exc:  # noqa: BLE001 - a description, never a failure
        return f"unavailable ({type(exc).__name__})"


def python_reference_ms() -> float:
    """`sum(range(10**6))`, best of five, in ms: a fixed pure-Python workload whose time
    scales with the interpreter speed the review cycle and the packs depend on."""
    return round(min(timeit.repeat("sum(range(10**6))", number=1, repeat=5)) * 1000, 1)


def describe(pg_url: str | None = None) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(pg_url),
        "python_reference_ms": python_reference_ms(),
    }


def one_line(info: dict[str, Any]) -> str:
    pg = f", PostgreSQL {info['postgresql']}" if info.get("postgresql") else ""
    return (f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['os']}, "
            f"Python {info['python']}, SQLite {info['sqlite']}{pg}; "
            f"speed reference {info.get('python_reference_ms', '?')} ms "
            "(sum(range(10**6)), lower is faster)")
