"""Anchors of the audit chain, kept outside the application database.

The hash chain shows any edit of a past entry, but not the newest entries deleted, nor a
chain rewritten with every hash recomputed by someone with write access to the database.
An anchor is the head of the chain (entry number and hash) at a moment, copied where that
person cannot reach with the same access:

- an append-only file, `RECOVERY_AUDIT_ANCHOR_FILE` (default
  `<home>/audit-anchors-<database>.jsonl`; point it at other storage, e.g. a mounted
  write-once share, in production);
- a Prefect table artifact keyed `audit-anchor-<database>`, in the Prefect server's own
  database, one version per anchor, visible to operations staff on the Artifacts page;
- the weekly summary email, which prints the anchor for its recipients.

`<database>` is a short digest of the database URL (without its password): anchors belong to
one database, and a test or staging database beside production never mixes with it. After
moving to another database, run `recovery audit anchor` once there.

Every review cycle run publishes one; `recovery audit anchor` publishes one by hand, and
`recovery audit verify` holds the chain against every anchor it can read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from models.audit import AuditAnchor
from models.errors import InvalidInput
from recovery.adapters.tables import AuditRow
from recovery.settings import get_settings

ARTIFACT_PREFIX = "audit-anchor"


def scope() -> str:
    """Which database the anchors belong to: a digest of its URL, password left out."""
    from sqlalchemy.engine import make_url

    url = make_url(get_settings().db_url).render_as_string(hide_password=True)
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]


def artifact_key() -> str:
    return f"{ARTIFACT_PREFIX}-{scope()}"


def anchor_file() -> Path:
    settings = get_settings()
    return settings.audit_anchor_file or settings.home / f"audit-anchors-{scope()}.jsonl"


def head(session: Session) -> AuditAnchor | None:
    """The chain's newest entry as an anchor, or None for an empty chain."""
    row = session.exec(select(AuditRow).order_by(col(AuditRow.seq).desc()).limit(1)).first()
    if row is None:
        return None
    return AuditAnchor(seq=row.seq, hash=row.hash, at=datetime.now(UTC), where="head")


def record(anchor: AuditAnchor, path: Path | None = None) -> bool:
    """Append the anchor to the file (flushed to disk); False when the file's last anchor
    already holds the same entry."""
    path = path or anchor_file()
    known = read_file(path)
    if known and (known[-1].seq, known[-1].hash) == (anchor.seq, anchor.hash):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at.isoformat()})
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def read_file(path: Path | None = None) -> list[AuditAnchor]:
    path = path or anchor_file()
    if not path.exists():
        return []
    anchors = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(AuditAnchor.model_validate({**json.loads(line), "where": path.name}))
        except (ValueError, ValidationError):
            raise InvalidInput(
                f"{path} line {number}", "must be an anchor written by recovery "
                "(seq, 64-hex hash, at); the file was edited") from None
    return anchors


def parse(text: str) -> AuditAnchor:
    """`SEQ:HASH` as printed by `recovery audit anchor` and the weekly email."""
    seq, _, digest = text.strip().partition(":")
    try:
        return AuditAnchor(seq=int(seq), hash=digest.lower(), at=datetime.now(UTC),
                           where="given")
    except (ValueError, ValidationError):
        raise InvalidInput("--anchor", "must be SEQ:HASH, an entry number and its "
                               "64-character hash") from None


def publish_artifact(anchor: AuditAnchor) -> None:
    """One version of this database's `audit-anchor-…` table artifact (in a flow run: on
    that run)."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        key=artifact_key(),
        table=[{"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at.isoformat()}],
        description=f"Audit chain anchor: entry {anchor.seq}. `recovery audit verify` "
                    "checks the chain still holds this entry with this hash.",
    )


def read_artifacts() -> list[AuditAnchor]:
    """Every version of this database's `audit-anchor-…` artifact on the Prefect server."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from recovery.adapters.prefect_api import _client

    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key()])))
    return list(_from_artifacts(artifacts))


def _from_artifacts(artifacts: Iterable[Any]) -> Iterable[AuditAnchor]:
    for artifact in artifacts:
        data = artifact.data
        rows = json.loads(data) if isinstance(data, str) else data
        for row in rows or []:
            try:
                yield AuditAnchor.model_validate({**row, "where": "Prefect artifact"})
            except ValidationError:
                continue  # not ours to judge; the file and the chain still are


def publish(session: Session) -> AuditAnchor | None:
    """Anchor the current head to the file and to Prefect (in a flow run, on that run).
    Returns the anchor (None for an empty chain)."""
    anchor = head(session)
    if anchor is None:
        return None
    record(anchor)
    publish_artifact(anchor)
    return anchor
