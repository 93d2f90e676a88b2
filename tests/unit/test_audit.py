"""The audit trail is append-only and hash-chained: any edit to a past entry is found."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from models.audit import GENESIS, AuditAnchor, AuditEntry, entry_hash, verify_chain

from .factories import NOW, append_entry, audit_chain

FIELDS = ("seq", "at", "actor", "action_ref", "event", "details", "prev_hash", "hash")


def tampered(entry: AuditEntry, field: str) -> AuditEntry:
    """The entry with one field changed, as someone editing the table might."""
    value = getattr(entry, field)
    changed: Any = {
        "seq": lambda: value + 100,
        "at": lambda: value + timedelta(seconds=1),
        "actor": lambda: value + ".x",
        "action_ref": lambda: "LILY-MED-002" if value != "LILY-MED-002" else None,
        "event": lambda: value + "_edited",
        "details": lambda: {**value, "rationale": "rewritten after the fact"},
        "prev_hash": lambda: ("1" if value[0] != "1" else "2") + value[1:],
        "hash": lambda: ("1" if value[0] != "1" else "2") + value[1:],
    }[field]()
    return entry.model_copy(update={field: changed})


def test_an_empty_trail_verifies() -> None:
    assert verify_chain([]).ok


def test_an_untouched_trail_verifies() -> None:
    result = verify_chain(audit_chain(5))
    assert result.ok
    assert result.entries == 5
    assert result.first_bad_seq is None and result.reason is None


def test_the_first_entry_follows_the_genesis_hash() -> None:
    [first] = audit_chain(1)
    assert first.prev_hash == GENESIS == "0" * 64


def test_each_entry_is_chained_to_the_one_before() -> None:
    chain = audit_chain(3)
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]


def test_entry_hash_depends_on_the_previous_hash() -> None:
    fields: dict[str, Any] = {
        "seq": 1, "at": NOW, "actor": "rm@rose.example", "action_ref": None,
        "event": "plan_signed_off", "details": {"decision": "approve"},
    }
    assert entry_hash(**fields, prev_hash=GENESIS) != entry_hash(**fields, prev_hash="1" * 64)


def test_entry_hash_does_not_depend_on_key_order_in_details() -> None:
    base: dict[str, Any] = {
        "seq": 1, "at": NOW, "actor": "a@b.org", "action_ref": "ROSE-SG-001",
        "event": "x", "prev_hash": GENESIS,
    }
    assert entry_hash(**base, details={"a": 1, "b": 2}) == entry_hash(
        **base, details={"b": 2, "a": 1}
    )


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("index", [0, 2, 4])
def test_editing_any_field_of_any_entry_is_detected_at_that_entry(field: str, index: int) -> None:
    chain = audit_chain(5)
    chain[index] = tampered(chain[index], field)
    result = verify_chain(chain)
    assert not result.ok
    assert result.first_bad_seq == index + 1
    assert result.reason


def test_an_edited_rationale_is_reported_as_altered() -> None:
    chain = audit_chain(3)
    chain[1] = tampered(chain[1], "details")
    assert verify_chain(chain).reason == "entry 2 was altered after it was written"


def test_a_deleted_entry_breaks_the_chain_where_it_was() -> None:
    chain = audit_chain(4)
    del chain[1]
    result = verify_chain(chain)
    assert not result.ok
    assert result.first_bad_seq == 2


def test_entries_out_of_order_are_detected() -> None:
    chain = audit_chain(3)
    chain[1], chain[2] = chain[2], chain[1]
    result = verify_chain(chain)
    assert result.first_bad_seq == 2


def test_a_rehashed_edit_is_still_detected_by_the_next_entry() -> None:
    chain = audit_chain(3)
    edited = tampered(chain[1], "actor")
    fields = edited.model_dump(exclude={"hash"})
    chain[1] = edited.model_copy(update={"hash": entry_hash(**fields)})
    result = verify_chain(chain)
    assert result.first_bad_seq == 3
    assert result.reason == "entry 3 does not follow the entry before it"


texts = st.text(min_size=1, max_size=12)
details = st.dictionaries(
    st.text(max_size=8), st.none() | st.booleans() | st.integers() | texts, max_size=4
)


@st.composite
def chains(draw: st.DrawFn) -> list[AuditEntry]:
    chain: list[AuditEntry] = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        chain = append_entry(
            chain, actor=draw(texts), event=draw(texts), details=draw(details),
            action_ref=draw(st.none() | texts),
            at=NOW + timedelta(seconds=draw(st.integers(0, 10**6))),
        )
    return chain


@given(chains())
def test_any_honestly_appended_trail_verifies(chain: list[AuditEntry]) -> None:
    assert verify_chain(chain) == verify_chain(list(chain))
    assert verify_chain(chain).ok
    assert verify_chain(chain).entries == len(chain)


@given(chains(), st.data())
def test_any_edit_to_any_past_entry_is_found_at_that_entry(
    chain: list[AuditEntry], data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(chain) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    chain[index] = tampered(chain[index], field)
    result = verify_chain(chain)
    assert not result.ok
    assert result.first_bad_seq == index + 1


# ----------------------------------------------------------------- anchors kept elsewhere


def anchor_of(entry: AuditEntry, where: str = "audit-anchors.jsonl") -> AuditAnchor:
    return AuditAnchor(seq=entry.seq, hash=entry.hash, at=NOW, where=where)


def test_entries_deleted_from_the_tail_verify_alone_but_not_against_an_anchor() -> None:
    chain = audit_chain(6)
    anchor = anchor_of(chain[5])
    cut = chain[:4]  # the two newest entries deleted: what the chain alone cannot show
    assert verify_chain(cut).ok
    result = verify_chain(cut, [anchor])
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.reason == (
        f"the chain ends at entry 4 but the anchor of {NOW:%d/%m/%Y %H:%M} "
        "(audit-anchors.jsonl) holds entry 6: entries 5 to 6 or more were deleted")


def test_a_chain_rewritten_with_every_hash_recomputed_fails_against_an_anchor() -> None:
    chain = audit_chain(4)
    anchor = anchor_of(chain[3], where="Prefect artifact")
    # someone with write access edits entry 2 and recomputes every hash after it
    rewritten: list[AuditEntry] = chain[:1]
    for entry in chain[1:]:
        fields = entry.model_dump(exclude={"hash"})
        fields["prev_hash"] = rewritten[-1].hash
        if entry.seq == 2:
            fields["details"] = {"rationale": "approved after all"}
        rewritten.append(AuditEntry(**fields, hash=entry_hash(**fields)))
    assert verify_chain(rewritten).ok
    result = verify_chain(rewritten, [anchor])
    assert not result.ok and result.first_bad_seq == 4
    assert result.reason is not None and "(Prefect artifact): the chain was rewritten" in (
        result.reason)


def test_an_honest_chain_holds_every_anchor_taken_along_the_way() -> None:
    chain = audit_chain(7)
    anchors = [anchor_of(chain[i]) for i in (0, 2, 2, 6)]
    result = verify_chain(chain, anchors)
    assert result.ok and result.anchors_checked == 4


@given(chains(), st.data())
def test_any_tail_deletion_below_an_anchor_is_found(chain: list[AuditEntry],
                                                    data: st.DataObject) -> None:
    anchored = data.draw(st.integers(0, len(chain) - 1))
    keep = data.draw(st.integers(0, anchored))
    result = verify_chain(chain[:keep], [anchor_of(chain[anchored])])
    assert not result.ok and result.first_bad_seq == keep + 1


@pytest.mark.parametrize("fields", [
    {"seq": 0, "hash": "a" * 64},
    {"seq": 3, "hash": "a" * 63},
    {"seq": 3, "hash": "A" * 64},
    {"seq": 3, "hash": "g" * 64},
])
def test_an_anchor_is_an_entry_number_and_a_sha256_digest(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuditAnchor(**fields, at=NOW)
