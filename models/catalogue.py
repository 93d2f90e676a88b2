"""Quality statements as versioned data: a framework id and its statements.

A new framework (CQC consulted in 2025 on replacing quality statements) is loaded as a
second `Framework` beside the first; actions keep the (framework, statement) pairs they
were linked to.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict

from models.errors import InvalidInput

DEFAULT_FRAMEWORK = "cqc-saf-2024"


class QualityStatement(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    key_question: str
    title: str


class EvidenceCategory(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class Framework(BaseModel):
    model_config = ConfigDict(frozen=True)

    framework_id: str
    name: str
    version: str
    evidence_categories: tuple[EvidenceCategory, ...]
    quality_statements: tuple[QualityStatement, ...]

    def statement(self, statement_id: str) -> QualityStatement:
        for statement in self.quality_statements:
            if statement.id == statement_id:
                return statement
        raise InvalidInput(
            "quality_statements",
            f"unknown quality statement '{statement_id}' in framework {self.framework_id}",
        )

    def resolve(self, statement_ids: list[str]) -> list[QualityStatement]:
        """The statements an action links to: at least one, every id known, no repeats."""
        if not statement_ids:
            raise InvalidInput("quality_statements", "at least one quality statement is required")
        if len(set(statement_ids)) != len(statement_ids):
            raise InvalidInput("quality_statements", "a quality statement is listed twice")
        return [self.statement(s) for s in statement_ids]


def parse_framework(text: str) -> Framework:
    """A framework from its YAML text (safe loader: no tags that construct objects)."""
    return Framework.model_validate(yaml.safe_load(text))


@cache
def builtin_framework(framework_id: str = DEFAULT_FRAMEWORK) -> Framework:
    text = resources.files("models.data").joinpath(f"{framework_id}.yaml").read_text("utf-8")
    return parse_framework(text)
