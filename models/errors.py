"""Domain errors: every error a person can cause names the field and the rule."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error raised by the domain."""


class InvalidInput(DomainError):
    """Bad input: one field broke one rule. The CLI exits 2."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class RuleRefused(DomainError):
    """A business rule refused the request. The CLI exits 3 and lists every reason."""

    def __init__(self, rule: str, reasons: list[str]) -> None:
        super().__init__(f"{rule}: " + "; ".join(reasons))
        self.rule = rule
        self.reasons = list(reasons)


class IllegalTransition(RuleRefused):
    """A lifecycle event that the action's current status does not allow."""


class NotFound(DomainError):
    """A reference that does not exist (action, person, location, statement)."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}: no such {field.replace('_', ' ')} '{value}'")
        self.field = field
        self.value = value
        self.rule = f"no such {field.replace('_', ' ')} '{value}'"


class NotInDirectory(NotFound):
    """An email nobody in the staff directory has (a `--by`, a plan's reviewer)."""

    def __init__(self, field: str, email: str) -> None:
        super().__init__(field, email)
        self.rule = f"no one with the email '{email}' is in the staff directory"
        self.args = (f"{field}: {self.rule}",)
