"""Monthly provider assurance: what the nominated individual records for each action."""

from __future__ import annotations

from models.refusal import Refusal, RefusalCode

#: What provider assurance may conclude about a high-risk action.
OUTCOMES = ("assurance", "challenge", "further_action")
#: A note says why, in at least this many characters.
MIN_NOTE = 10


def entry_refusals(ref: str, outcome: object, note: str) -> list[Refusal]:
    """Every reason one action's assurance entry may not be recorded (empty when it may)."""
    out: list[Refusal] = []
    if outcome not in OUTCOMES:
        out.append(Refusal(code=RefusalCode.BAD_CHOICE,
                           message=f"{ref}: choose assurance, challenge or further action"))
    if len(note.strip()) < MIN_NOTE:
        out.append(Refusal(code=RefusalCode.TOO_SHORT,
                           message=f"{ref}: the note must be at least {MIN_NOTE} characters"))
    return out
