"""Reading plan and people files: YAML in, validated domain values out.

Every refusal is one InvalidInput naming the field and the rule. YAML is read with the
safe loader, aliases are refused (no "billion laughs"), and size is capped.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from models.action import ActionPlan
from models.errors import InvalidInput
from models.people import Person
from models.templates import apply_template, get_template

MAX_FILE_BYTES = 256 * 1024


#: No plan, people or framework file nests deeper than a handful of levels; a file of
#: 100 000 `[` would otherwise exhaust Python's recursion limit.
MAX_DEPTH = 32


class _NoAliasLoader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            # the stub leaves peek_event untyped; it returns the alias event
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            where = f" (line {event.start_mark.line + 1})" if event.start_mark else ""
            raise InvalidInput("file", f"YAML aliases are not allowed{where}")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                where = f" (line {event.start_mark.line + 1})" if event.start_mark else ""
                raise InvalidInput("file", f"is nested more than {MAX_DEPTH} levels deep{where}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        _refuse_duplicate_keys(self, node, ())
        return super().construct_document(node)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: Any, path: tuple[str, ...]) -> None:
    """PyYAML silently keeps the last of two equal keys; a plan that says `value: 60` and
    then `value: 95` is ambiguous, so it is refused, naming the key (a dotted path)."""
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(loader, item, (*path, str(index)))
        return
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        # the same constructor the document uses, so `1` and `1.0` or `'a'` and `a` match
        # exactly when PyYAML would overwrite one with the other
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1 if key_node.start_mark else 0
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor refuses it later
            continue
        if first is not None:
            raise InvalidInput(
                ".".join((*path, str(key))),
                f"is given twice (lines {first} and {line}); a key may appear only once",
            )
        seen[key] = line
        _refuse_duplicate_keys(loader, value_node, (*path, str(key)))


def load_yaml(data: bytes, *, what: str = "file") -> Any:
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(what, f"is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(what, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        raise InvalidInput(what, f"YAML tag not allowed: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InvalidInput(what, f"is not valid YAML{where}") from None


def first_error(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """The first pydantic error as one InvalidInput: `field.path: rule`."""
    err = exc.errors()[0]
    # list indices stay in the path (`people.1.email`): they say which entry is wrong
    loc = ".".join(str(p) for p in err["loc"])
    field = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "file")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        if ": " in msg and not loc:
            field, _, msg = msg.partition(": ")
    if err["type"] == "missing":
        msg = "is required"
    elif err["type"] == "extra_forbidden":
        msg = "is not a known key"
    return InvalidInput(field, msg)


def parse_plan(data: bytes) -> ActionPlan:
    raw = load_yaml(data)
    if not isinstance(raw, dict):
        raise InvalidInput("file", "a plan file must be a YAML mapping of keys to values")
    return plan_from_mapping(raw)


def plan_from_mapping(raw: dict[str, Any]) -> ActionPlan:
    template_id = raw.get("template")
    if template_id is not None:
        if not isinstance(template_id, str):
            raise InvalidInput("template", "must be a template id")
        raw = apply_template(raw, get_template(template_id))
    try:
        return ActionPlan.model_validate(raw)
    except ValidationError as exc:
        raise first_error(exc) from None


class PeopleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    locations: list[dict[str, str]] = []
    people: list[Person]


def parse_people(data: bytes) -> PeopleFile:
    raw = load_yaml(data)
    if not isinstance(raw, dict):
        raise InvalidInput("file", "a people file must be a mapping with provider and people")
    try:
        parsed = PeopleFile.model_validate(raw)
    except ValidationError as exc:
        raise first_error(exc) from None
    seen: set[str] = set()
    for index, person in enumerate(parsed.people):
        if person.email in seen:
            raise InvalidInput(f"people.{index}.email", f"{person.email} is listed twice")
        seen.add(person.email)
    return parsed
