"""The three packs rendered for the seed examples and for a provider of 20 locations, each
section and figure checked against the stored rows (not the pack's own context)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlmodel import col, select

from models.errors import NotFound
from recovery.adapters import db
from recovery.adapters.mail import outgoing
from recovery.adapters.tables import (
    ActionRow,
    AuditRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ReviewRow,
)
from recovery.reporting import packs as reports
from recovery.reporting.snapshot import build_snapshot
from tests.reports import html as H
from tests.reports import scenario
from tests.reports.conftest import Built, pack_and_html

NOT_IN_PACKS = ("draft", "closed")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:g}%"


def uk(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def stored(as_of: date) -> dict[str, dict[str, Any]]:
    """What the database says about every action a pack covers."""
    out: dict[str, dict[str, Any]] = {}
    with db.unit_of_work() as session:
        people = {p.id: p for p in session.exec(select(PersonRow))}
        places = {loc.id: loc.name for loc in session.exec(select(LocationRow))}
        for row in session.exec(select(ActionRow).where(
                col(ActionRow.status).not_in(NOT_IN_PACKS))):
            reviews = list(session.exec(select(ReviewRow).where(
                ReviewRow.action_id == row.id, ReviewRow.as_of <= as_of)
                .order_by(col(ReviewRow.as_of))))
            evidence = list(session.exec(select(EvidenceRow).where(
                EvidenceRow.action_id == row.id, EvidenceRow.observed_on <= as_of)))
            out[row.ref] = {
                "row": row, "plan": row.plan, "location": places[row.location_id],
                "lead": people[row.accountable_lead_id],
                "reviewer": people[row.senior_reviewer_id],
                "latest": reviews[-1] if reviews else None,
                "evidence": evidence,
                "audit": list(session.exec(select(AuditRow).where(
                    AuditRow.action_ref == row.ref).order_by(col(AuditRow.seq)))),
            }
    return out


def latest_rating(item: dict[str, Any]) -> str:
    return item["latest"].rating.replace("_", " ") if item["latest"] else "not reviewed"


# ---------------------------------------------------------------- governance


def test_governance_pack(dataset: Built) -> None:
    pack, doc = pack_and_html(dataset, "governance")
    truth = stored(dataset.as_of)
    assert truth, "the scenario has open actions"
    for section in ("summary", "high-risk", "weaknesses", "decisions-needed"):
        H.element(doc, section)

    # the tracker lists every open action, high risk first and highest score first
    tracker = H.element(doc, "summary")
    refs = H.attribute_values(tracker, "tr", "data-ref")
    assert sorted(refs) == sorted(truth)
    rank = {"high": 0, "medium": 1, "low": 2}
    expected = sorted(truth, key=lambda r: (rank[truth[r]["row"].risk_level],
                                            -truth[r]["row"].risk_score, r))
    assert refs == expected

    high = [r for r in expected if truth[r]["row"].risk_level == "high"]
    assert high, "the scenario has high-risk actions"
    section = H.element(doc, "high-risk")
    assert H.attribute_values(section, "article", "data-ref") == high
    for ref in high:
        item, card = truth[ref], H.element(doc, f"action-{ref}")
        words = H.text(card)
        row = item["row"]
        assert f"score {row.risk_score} of 30" in words
        for reason in row.risk_reasons:
            assert reason in words
        assert f"{item['lead'].name} ({item['lead'].role.replace('_', ' ')}" in words
        assert f"{item['reviewer'].name} ({item['reviewer'].role.replace('_', ' ')}" in words
        assert H.text(H.elements(card, "td", "data-field", "status")[0]) == \
            row.status.replace("_", " ")
        assert H.text(H.elements(card, "span", "data-field", "rag")[0]) == latest_rating(item)
        measured = item["latest"].measured_value if item["latest"] else None
        assert H.text(H.elements(card, "strong", "data-field", "measured")[0]) == pct(measured)
        for control in item["plan"]["interim_controls"]:
            assert control in words
        # evidence per pillar: the number of items matches the stored evidence
        counts = Counter(e.pillar for e in item["evidence"])
        for pillar in ("care_records", "audits", "feedback", "staff_practice", "supporting"):
            cells = H.elements(card, "tr", "data-pillar", pillar)
            assert cells, pillar
            assert H.text(cells[0]).endswith(str(counts.get(pillar, 0))), (ref, pillar)
        # the measure chart, drawn from the stored reviews, target and trajectory
        chart = H.elements(card, "svg", "class", "chart")
        assert len(chart) == 1 and "target at least" in chart[0] \
            and "trajectory: baseline to target" in chart[0]
        if row.escalated:
            assert "escalated" in words.lower()

    # governance weaknesses: every weakness the stored data shows, under its heading
    weak = H.element(doc, "weaknesses")
    with db.unit_of_work() as session:
        snapshot = build_snapshot(session, as_of=dataset.as_of)
    expected_weaknesses = [(line.ref, w) for line in snapshot.lines for w in line.weaknesses]
    assert expected_weaknesses
    listed = [(H.attribute_values(row_html, "tr", "data-ref")[0], H.text(row_html))
              for row_html in H.elements(weak, "tr", "data-ref")]
    assert len(listed) == len(expected_weaknesses)
    for ref, text in expected_weaknesses:
        assert any(r == ref and text in t for r, t in listed), (ref, text)

    # decisions needed: every one waiting on a sign-off, and every open escalation still
    # waiting for its change of operational control (one with a change recorded waits on
    # evidence, not on a decision)
    decided = H.element(doc, "decisions-needed")
    rows = [(H.attribute_values(r, "tr", "data-ref")[0], H.text(r))
            for r in H.elements(decided, "tr", "data-ref")]
    with db.unit_of_work() as session:
        open_escalations = {e.action_id: e for e in session.exec(
            select(EscalationRow).where(col(EscalationRow.resolved_on).is_(None)))}
    for ref, item in truth.items():
        row = item["row"]
        escalation = open_escalations.get(row.id)
        if row.status.startswith("awaiting") or (
                escalation is not None and escalation.control_change_id is None):
            assert any(r == ref for r, _ in rows), ref
        elif escalation is not None:
            assert not any(r == ref and "record a change" in t for r, t in rows), ref

    # the matrix: every location, coloured by worst status
    matrix = H.elements(H.element(doc, "summary"), "svg", "class", "chart")[0]
    with db.unit_of_work() as session:
        for place in session.exec(select(LocationRow)):
            assert f">{place.name}<" in matrix


def test_seed_governance_weaknesses_by_kind(seed: Built) -> None:
    _, doc = pack_and_html(seed, "governance")
    local = H.text(H.element(doc, "weakness-local"))
    stale = H.text(H.element(doc, "weakness-stale"))
    # Quay House's action is reviewed only by its registered manager
    assert "QUAY-MED-001" in local and "ROSE-SG-001" not in local
    # Elm Court has no feedback evidence at all
    assert "ELM-STF-001" in stale and "feedback" in stale


def test_provider_pack_overdue_reviews_and_scope(provider: Built) -> None:
    pack, doc = pack_and_html(provider, "governance")
    overdue = H.element(doc, "weakness-overdue")
    assert H.attribute_values(overdue, "tr", "data-ref"), "daily reviews stopped 3 days early"
    assert pack.counts.actions == len(provider.info["refs"])
    waiting = H.text(H.element(doc, "decisions-needed"))
    for ref in provider.info["waiting"]:
        assert ref in waiting and "plan sign-off" in waiting
    # with 60 actions only the high-risk ones get a chart
    high = [a for a in pack.actions if a.is_high]
    charts = [a for a in pack.actions if a.chart_svg]
    assert len(high) < len(pack.actions) and {a.ref for a in charts} == {a.ref for a in high}
    for a in pack.actions:
        card = H.element(doc, f"action-{a.ref}")
        assert bool(H.elements(card, "svg", "class", "chart")) == a.is_high


# ---------------------------------------------------------------- commissioner


def test_commissioner_pack(dataset: Built) -> None:
    pack, doc = pack_and_html(dataset, "commissioner")
    truth = stored(dataset.as_of)
    for section in ("summary", "tracker", "improvement-plan"):
        H.element(doc, section)
    domains = sorted({item["row"].risk_domain for item in truth.values()})
    assert sorted(d.domain for d in pack.domains) == domains
    for domain in domains:
        section = H.element(doc, f"domain-{domain}")
        in_domain = [r for r, item in truth.items() if item["row"].risk_domain == domain]
        assert sorted(H.attribute_values(section, "article", "data-ref")) == sorted(in_domain)
        words = H.text(section)
        for heading in ("Audit summaries", "Governance minutes"):
            assert heading in words
        own = {"staffing": ("Staffing evidence", "rota_evidence"),
               "safeguarding": ("Safeguarding updates", "safeguarding_logs"),
               "medicines": ("Medicines reports", "medicines_records")}.get(domain)
        if own:
            count = sum(1 for r in in_domain for e in truth[r]["evidence"] if e.source == own[1])
            assert f"{own[0]} ({count})" in words
        audits = sum(1 for r in in_domain for e in truth[r]["evidence"] if e.source == "audits")
        assert f"Audit summaries ({audits})" in words
        for ref in in_domain:
            item = truth[ref]
            card = H.element(section, f"action-{ref}")
            card_words = H.text(card)
            for control in item["plan"]["interim_controls"]:
                assert control in card_words
            assert H.text(H.elements(card, "strong", "data-field", "lead")[0]) == \
                item["lead"].name
            assert H.text(H.elements(card, "strong", "data-field", "reviewer")[0]) == \
                item["reviewer"].name
            measured = item["latest"].measured_value if item["latest"] else None
            assert H.text(H.elements(card, "strong", "data-field", "measured")[0]) == \
                pct(measured)
            assert f"baseline {pct(item['row'].baseline_value)} on " \
                   f"{uk(item['row'].baseline_on)}" in card_words

    # the improvement plan: one row per action, with its responsible person and timeline
    plan = H.element(doc, "improvement-plan")
    rows = H.elements(plan, "tr", "data-ref")
    assert sorted(H.attribute_values(plan, "tr", "data-ref")) == sorted(truth)
    assert pack.improvement_rows == len(truth)
    for row_html in rows:
        ref = H.attribute_values(row_html, "tr", "data-ref")[0]
        item = truth[ref]
        responsible = H.text(H.elements(row_html, "td", "data-field", "responsible")[0])
        assert responsible.startswith(item["lead"].name)
        timeline = H.text(H.elements(row_html, "td", "data-field", "timeline")[0])
        assert uk(item["row"].baseline_on) in timeline and uk(item["row"].deadline) in timeline
    issues = {item["plan"]["baseline"]["issue"] for item in truth.values()}
    for issue in issues:
        assert issue in H.text(plan)


# ---------------------------------------------------------------- inspector


def test_inspector_pack(dataset: Built) -> None:
    pack, doc = pack_and_html(dataset, "inspector")
    truth = stored(dataset.as_of)
    with db.unit_of_work() as session:
        entries = len(session.exec(select(AuditRow.seq)).all())
    notice = H.element(doc, "chain-verification")
    assert 'data-ok="true"' in notice
    assert f"the hash chain of all {entries:,} entries is intact" in H.text(notice)
    for section in ("prioritisation", "who-reviews", "claims"):
        H.element(doc, section)

    ratings = H.element(doc, "prioritisation")
    reviewers = H.element(doc, "who-reviews")
    for ref, item in truth.items():
        rating_row = H.elements(ratings, "tr", "data-ref", ref)[0]
        factors = dict(re.findall(r'data-factor="(\w+)">(\d+)<', rating_row))
        assert {k: int(v) for k, v in factors.items()} == item["plan"]["risk"]
        assert f">{item['row'].risk_score}<" in rating_row
        who = H.text(H.elements(reviewers, "tr", "data-ref", ref)[0])
        assert item["lead"].name in who and item["reviewer"].name in who

        card = H.element(doc, f"action-{ref}")
        claims = H.attribute_values(card, "tr", "data-claim")
        assert claims == ["Risk rating", "Named accountability", "Status", "Interim controls",
                          "Progress against trajectory", "Escalation",
                          "Provider-level oversight"]
        # the decision log is the audit trail's entries for this action, with their hashes
        seqs = [int(s) for s in H.attribute_values(card, "tr", "data-seq")]
        assert seqs == [a.seq for a in item["audit"]]
        for audit in item["audit"]:
            row_html = H.elements(card, "tr", "data-seq", str(audit.seq))[0]
            assert audit.hash[:16] in row_html and audit.event in row_html
        # every evidence reference behind the tracker entry is listed
        words = H.text(card)
        for e in item["evidence"]:
            assert e.reference in words
        # the claims point only at entries of this action's log
        for linked in re.findall(r'href="#log-(\d+)"', card):
            assert int(linked) in seqs


def test_inspector_pack_states_a_broken_chain(seed_built: Built, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tampered.db"
    shutil.copyfile(seed_built.url.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as conn:
        seq = conn.execute("SELECT seq FROM audit_log WHERE action_ref = 'ROSE-SG-001' AND "
                           "event = 'status.approve_plan'").fetchone()[0]
        conn.execute("UPDATE audit_log SET details = json_set(details, '$.rationale', "
                     "'edited afterwards') WHERE seq = ?", (seq,))
    from tests.reports.conftest import _point

    _point(monkeypatch, f"sqlite:///{path}", tmp_path / "home")
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, "inspector", as_of=seed_built.as_of)
    doc = reports.render_html(pack)
    notice = H.element(doc, "chain-verification")
    assert 'data-ok="false"' in notice
    assert "FAILED" in H.text(notice) and f"entry {seq} was altered" in H.text(notice)
    row = H.elements(doc, "tr", "data-seq", str(seq))[0]
    assert "not verified" in H.text(row)
    db.engine_for(f"sqlite:///{path}").dispose()


# ---------------------------------------------------------------- escaping, formats


def test_free_text_is_escaped_in_every_format(seed: Built) -> None:
    for kind in reports.PACKS:
        _, doc = pack_and_html(seed, kind)
        lowered = doc.lower()
        assert "<script" not in lowered, kind
        assert "<img src=x" not in lowered and "<b>every day</b>" not in lowered, kind
        assert "&lt;script&gt;alert(" in doc, kind
        with db.unit_of_work() as session:
            md = reports.render_markdown(reports.build_pack(session, kind, as_of=seed.as_of,
                                                            charts_for="none"))
        # the Markdown escapes the tags, so rendered they are text, never HTML
        rendered = MarkdownIt("commonmark").enable("table").render(md).lower()
        assert "<script" not in rendered and "<img" not in rendered, kind
        assert "\\<script\\>alert(" in md, kind
    _, governance = pack_and_html(seed, "governance")
    assert H.text(governance).count(scenario.SCRIPT_RATIONALE) == 1
    _, commissioner = pack_and_html(seed, "commissioner")
    assert scenario.SCRIPT_REFERENCE in H.text(commissioner)
    assert scenario.SCRIPT_CONTROL in H.text(commissioner)


def test_markdown_packs(dataset: Built) -> None:
    truth = stored(dataset.as_of)
    headings = {"governance": ["## Summary", "## High-risk actions", "## Governance weaknesses",
                               "## Decisions needed"],
                "commissioner": ["## Risk-rated tracker", "## Improvement plan"],
                "inspector": ["## Audit trail verification", "## How actions were prioritised",
                              "## Who reviews them",
                              "## Tracker claims and the records behind them"]}
    for kind in reports.PACKS:
        with db.unit_of_work() as session:
            md = reports.render_markdown(reports.build_pack(
                session, kind, as_of=dataset.as_of, charts_for="none"))
        for heading in headings[kind]:
            assert heading in md, (kind, heading)
        for ref in truth:
            assert ref in md, (kind, ref)
        assert "<svg" not in md
        assert "10 December 2026" in md  # UK long date for the position


def test_uk_conventions(seed: Built) -> None:
    _, doc = pack_and_html(seed, "governance")
    words = H.text(doc)
    assert "Position as of 10 December 2026" in words
    assert re.search(r"Generated \d{1,2} \w+ 20\d\d at \d\d:\d\d (GMT|BST) \(Europe/London\)",
                     words)
    assert "30/12/2026" in words  # QUAY-MED-001's deadline, day first
    assert "2026-12-30" not in words
    assert "prioritized" not in H.text(pack_and_html(seed, "inspector")[1])
    assert "How actions were prioritised" in H.text(pack_and_html(seed, "inspector")[1])


@pytest.mark.parametrize("kind", reports.PACKS)
def test_pdf(seed: Built, kind: str) -> None:
    _, doc = pack_and_html(seed, kind)
    started = time.perf_counter()
    document = reports.print_document(doc)
    pdf = document.write_pdf()
    took = time.perf_counter() - started
    assert pdf.startswith(b"%PDF-")
    for page in document.pages:  # A4 portrait: 210 x 297 mm at 96 CSS px per inch
        assert round(page.width * 25.4 / 96) == 210 and round(page.height * 25.4 / 96) == 297
    # every section starts a new page, in order
    sections = re.findall(r'<section class="pack-section[^"]*" id="([^"]+)"', doc)
    first_page = {}
    for number, page in enumerate(document.pages):
        for anchor in page.anchors:
            first_page.setdefault(anchor, number)
    starts = [first_page[s] for s in sections]
    assert starts == sorted(set(starts)), starts
    print(f"{kind} PDF: {len(document.pages)} pages, {len(pdf) // 1024} KiB in {took:.1f}s")


def test_location_filter(seed: Built) -> None:
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, "governance", as_of=seed.as_of, location="rose")
        assert [a.ref for a in pack.actions] == ["ROSE-SG-001"]
        assert pack.meta.location == "Rose House"
        with pytest.raises(NotFound):
            reports.build_pack(session, "governance", as_of=seed.as_of, location="Nowhere")


def test_provider_packs_render_in_reasonable_time(provider: Built) -> None:
    started = time.perf_counter()
    sizes = {}
    for kind in reports.PACKS:
        _, doc = pack_and_html(provider, kind)
        sizes[kind] = len(doc)
    took = time.perf_counter() - started
    print(f"20-location packs: {sizes} in {took:.1f}s")
    assert took < 120


def test_assurance_notes_are_escaped(seed_built: Built, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The nominated individual's monthly assurance minutes, recorded through the real
    assurance service (code from the outbox), with HTML in a note."""
    from recovery.adapters.tables import OutboxRow
    from recovery.application import assurance
    from recovery.settings import get_settings
    from tests.reports.conftest import _point

    path = tmp_path / "assured.db"
    shutil.copyfile(seed_built.url.removeprefix("sqlite:///"), path)
    _point(monkeypatch, f"sqlite:///{path}", tmp_path / "home")
    today = get_settings().today()
    note = "Minutes checked <script>alert('note')</script> & logs sampled"
    with db.unit_of_work() as session:
        wait = assurance.open_request(session, as_of=today, flow_run_id=None)
        mail = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"assurance:{wait.month}")).one()
        text = outgoing(mail)[1]  # the code is put in as the email is sent
        code = re.search(r"\b(\d{6})\b", text)
        assert code, text
        answer = {"reviewer_email": wait.reviewer_email, "code": code.group(1)}
        for ref in wait.refs:
            answer[f"{assurance.field_name(ref)}_outcome"] = "challenge"
            answer[f"{assurance.field_name(ref)}_note"] = note
        assert assurance.apply(session, month=wait.month, answer=answer) == []
    as_of = max(seed_built.as_of, today)
    for kind in ("governance", "commissioner"):
        with db.unit_of_work() as session:
            doc = reports.render_html(reports.build_pack(session, kind, as_of=as_of,
                                                         charts_for="none"))
        assert "<script" not in doc.lower()
        assert H.text(doc).count(note) == len(wait.refs), kind
    db.engine_for(f"sqlite:///{path}").dispose()


def test_written_html_is_the_rendered_html(seed: Built, tmp_path: Path) -> None:
    """`write_report` streams the HTML to the file: the same bytes as `render_html`."""
    out = tmp_path / "governance.html"
    result = reports.write_report("governance", "html", out, as_of=seed.as_of)
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, "governance", as_of=seed.as_of)
    written = out.read_text(encoding="utf-8")
    rendered = reports.render_html(pack)
    strip = re.compile(r"\d{1,2} \w+ \d{4} at \d\d:\d\d")  # generated a minute apart, maybe
    assert strip.sub("", written) == strip.sub("", rendered)
    assert result.bytes == out.stat().st_size


def test_governance_pillars_match_every_item(dataset: Built) -> None:
    """The per-pillar summary read with SQL window functions equals the one worked out
    from every evidence item (`models.review.pillar_positions`)."""
    from collections import defaultdict
    from datetime import timedelta

    from models.evidence import TRIANGULATION_PILLARS, Pillar
    from models.review import pillar_positions
    from recovery.adapters import repository as repo
    from recovery.settings import get_settings

    freshness = get_settings().evidence_freshness_days
    cutoff = dataset.as_of - timedelta(days=freshness)
    pack, _ = pack_and_html(dataset, "governance")
    with db.unit_of_work() as session:
        ids = {r.ref: r.id for r in session.exec(select(ActionRow))}
        items: dict[int, list[Any]] = defaultdict(list)
        for row in session.exec(select(EvidenceRow)
                                .where(EvidenceRow.observed_on <= dataset.as_of)
                                .order_by(col(EvidenceRow.observed_on), col(EvidenceRow.id))):
            items[row.action_id].append(repo.to_evidence(row))
    for a in pack.actions:
        mine = items[ids[a.ref]]
        expected = [(p.pillar.value, p.latest.value if p.latest else None, p.last_observed_on,
                     p.fresh, sum(1 for e in mine if e.pillar == p.pillar))
                    for p in pillar_positions(mine, dataset.as_of, freshness)]
        supporting = [e for e in mine if e.pillar == Pillar.SUPPORTING]
        measured = [e.value for e in supporting if e.value is not None]
        last = supporting[-1].observed_on if supporting else None
        expected.append(("supporting", measured[-1] if measured else None, last,
                         last is not None and last >= cutoff, len(supporting)))
        got = [(p.pillar, p.latest_value, p.last_observed_on, p.fresh, p.items)
               for p in a.pillars]
        assert got == expected, a.ref
        assert len(TRIANGULATION_PILLARS) + 1 == len(got)


def test_governance_pack_from_the_weekly_snapshot(dataset: Built) -> None:
    """The weekly cycle hands the pack the snapshot it has built: the same pack as one that
    builds its own, and only the whole provider's snapshot of the pack's date is taken."""
    with db.unit_of_work() as session:
        snapshot = build_snapshot(session, as_of=dataset.as_of)
        reused = reports.build_pack(session, "governance", as_of=dataset.as_of,
                                    snapshot=snapshot)
        own = reports.build_pack(session, "governance", as_of=dataset.as_of)
        assert reused.counts.actions == len(snapshot.lines) > 0
        skip = {"meta": {"generated_at"}}
        assert reused.model_dump(exclude=skip) == own.model_dump(exclude=skip)
        located = build_snapshot(session, as_of=dataset.as_of,
                                 location=session.exec(select(LocationRow)).first().name)
        with pytest.raises(ValueError, match="whole provider"):
            reports.build_pack(session, "governance", as_of=dataset.as_of,
                               location=located.lines[0].location, snapshot=located)
        with pytest.raises(ValueError, match="own date"):
            reports.build_pack(session, "governance", as_of=date(2020, 1, 1),
                               snapshot=snapshot)
        with pytest.raises(ValueError, match="only the governance pack"):
            reports.build_pack(session, "commissioner", as_of=dataset.as_of,
                               snapshot=snapshot)
