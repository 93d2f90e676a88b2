"""Fixtures for the report packs and tracker spreadsheets.

Each database is a fresh SQLite file the product is pointed at through
RECOVERY_DATABASE_URL (settings cache cleared), built only through the product's services
(see `scenario`): the three seed examples, and a generated provider of 20 locations. The
two are built once per session and only read by the tests that render packs; tests that
write get a fresh database of their own.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from recovery.adapters import db
from recovery.reporting import packs as reports
from recovery.settings import get_settings
from tests.reports import scenario


@dataclass
class Built:
    name: str
    url: str
    home: Path
    as_of: date
    info: dict[str, Any]
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)


def _point(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    monkeypatch.setenv("RECOVERY_HOME", str(home))
    monkeypatch.delenv("RECOVERY_BUSINESS_DATE", raising=False)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; every database here starts as a copy of it."""
    path = tmp_path_factory.mktemp("reports-template") / "template.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    db.engine_for(url).dispose()
    return path


def _build(tmp_path_factory: pytest.TempPathFactory, migrated: Path, name: str,
           build: Callable[[], dict[str, Any]]) -> Built:
    folder = tmp_path_factory.mktemp(f"reports-{name}")
    path = folder / "recovery.db"
    shutil.copyfile(migrated, path)
    url = f"sqlite:///{path}"
    with pytest.MonkeyPatch.context() as mp:
        _point(mp, url, folder / "home")
        info = build()
        db.engine_for(url).dispose()
    get_settings.cache_clear()
    return Built(name=name, url=url, home=folder / "home", as_of=info["as_of"], info=info)


@pytest.fixture(scope="session")
def seed_built(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Built:
    return _build(tmp_path_factory, migrated, "seed", scenario.build_seed)


@pytest.fixture(scope="session")
def provider_built(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Built:
    return _build(tmp_path_factory, migrated, "provider20", scenario.build_provider)


@pytest.fixture
def seed(seed_built: Built, monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    """The seed examples' database, for reading."""
    _point(monkeypatch, seed_built.url, seed_built.home)
    yield seed_built
    get_settings.cache_clear()


@pytest.fixture
def provider(provider_built: Built, monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    """The 20-location provider's database, for reading."""
    _point(monkeypatch, provider_built.url, provider_built.home)
    yield provider_built
    get_settings.cache_clear()


@pytest.fixture(params=["seed", "provider"])
def dataset(request: pytest.FixtureRequest) -> Built:
    built: Built = request.getfixturevalue(request.param)
    return built


@pytest.fixture
def empty(migrated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database with the catalogue and the example staff directory, nothing else."""
    path = tmp_path / "recovery.db"
    shutil.copyfile(migrated, path)
    url = f"sqlite:///{path}"
    _point(monkeypatch, url, tmp_path / "home")
    scenario.directory((scenario.EXAMPLES / "people.yaml").read_bytes())
    yield url
    db.engine_for(url).dispose()
    get_settings.cache_clear()


def pack_and_html(built: Built, kind: str) -> tuple[Any, str]:
    """The typed pack and its HTML, built once per dataset (the env points at it)."""
    key = (kind, "html")
    if key not in built.cache:
        with db.unit_of_work() as session:
            pack = reports.build_pack(session, kind, as_of=built.as_of)
        built.cache[key] = (pack, reports.render_html(pack))
    result: tuple[Any, str] = built.cache[key]
    return result
