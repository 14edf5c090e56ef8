"""Declarative mapping: build the body sent from the envelope, one output field per rule.

A mapping is an object of output field -> rule. A rule is

    "data.visitor.email"                                   a JMESPath expression (a path)
    {"path": "...", "default": ...}                        the same, with a value for null
    {"path": "...", "format_date": "%Y-%m-%d", "tz": "Europe/London"}   re-format an ISO date
    {"path": "...", "split": " ", "index": 0}              split text (index picks one piece)
    {"const": ...}                                         a constant JSON value
    {"template": "Chat with {data.visitor.name}"}          text with placeholders
    {"join": "\\n", "path": "data.transcript", "item": "{author}: {text}"}   a list into one text

An object holding any of the keys ``path``, ``const``, ``template`` or ``join`` is a rule (and
may hold only that rule's keys); any other object is a nested output object. A null result
(missing field) becomes ``default`` if given, else null. Wrong types are errors, not nulls.
"""
from __future__ import annotations

from typing import Any

from .expressions import Evaluator, Expression, TransformError, compile_expression
from .functions import FUNCTIONS, FunctionError, SizeExceeded, measure, zone
from .templates import MAX_RENDERED_CHARS, TextTemplate, render_value

__all__ = ["Mapping", "MAX_MAPPING_RULES", "MAX_MAPPING_DEPTH"]

MAX_MAPPING_RULES = 200
MAX_MAPPING_DEPTH = 8
MAX_CONST_CHARS = 16_384
MAX_FIELD_CHARS = 200
MAX_SEPARATOR_CHARS = 100

_KINDS = ("const", "template", "join", "path")
_ALLOWED_KEYS = {
    "const": {"const"},
    "template": {"template"},
    "join": {"join", "path", "item", "default"},
    "path": {"path", "default", "format_date", "tz", "split", "index"},
}


def _json_value(value: Any, where: str, what: str) -> Any:
    """Refuse a ``const``/``default`` that is not plain, small JSON."""
    try:
        measure(value, MAX_CONST_CHARS)
    except SizeExceeded:
        raise TransformError(where, f"{what} is over {MAX_CONST_CHARS} characters") from None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise TransformError(where, f"{what} has a non-text object key")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not (item is None or isinstance(item, (str, bool, int)) or (isinstance(item, float) and item == item and abs(item) != float("inf"))):
            raise TransformError(where, f"{what} must be plain JSON, not {type(item).__name__}")
    return value


def _text_option(rule: dict[str, Any], key: str, where: str, limit: int) -> str:
    value = rule[key]
    if not isinstance(value, str) or not value or len(value) > limit:
        raise TransformError(where, f"{key!r} must be non-empty text of at most {limit} characters")
    return value


class _Rule:
    """One output value computed from the envelope."""

    def __init__(self, where: str, rule: dict[str, Any] | str) -> None:
        self.where = where
        if isinstance(rule, str):
            rule = {"path": rule}
        kinds = [k for k in _KINDS if k in rule]
        kind = "join" if kinds == ["join", "path"] else kinds[0]
        if len(kinds) > 1 and kind != "join":
            raise TransformError(where, f"a rule has exactly one of const, template, join or path; got {', '.join(kinds)}")
        unknown = sorted(set(rule) - _ALLOWED_KEYS[kind])
        if unknown:
            allowed = ", ".join(sorted(_ALLOWED_KEYS[kind]))
            raise TransformError(where, f"unknown key(s) {', '.join(map(repr, unknown))} in a {kind} rule (allowed: {allowed})")
        self.kind = kind
        self.const = _json_value(rule["const"], where, "const") if kind == "const" else None
        self.default = _json_value(rule["default"], where, "default") if "default" in rule else None
        self.template = TextTemplate.compile(rule["template"], where) if kind == "template" else None
        self.path: Expression | None = None
        if kind in ("join", "path"):
            if "path" not in rule:
                raise TransformError(where, "a join rule needs a 'path' to the list")
            self.path = compile_expression(rule["path"], where)
        self.separator = ""
        if kind == "join":
            if not isinstance(rule["join"], str) or len(rule["join"]) > MAX_SEPARATOR_CHARS:
                raise TransformError(where, f"'join' must be text of at most {MAX_SEPARATOR_CHARS} characters")
            self.separator = rule["join"]
        self.item = TextTemplate.compile(rule["item"], where) if "item" in rule else None
        self.date_format = _text_option(rule, "format_date", where, 100) if "format_date" in rule else None
        self.tz = _text_option(rule, "tz", where, 64) if "tz" in rule else "UTC"
        if "tz" in rule and self.date_format is None:
            raise TransformError(where, "'tz' goes with 'format_date'")
        if self.date_format is not None:
            try:
                zone(self.tz)
            except FunctionError:
                raise TransformError(where, f"unknown time zone {self.tz!r} (use an IANA name such as Europe/London)") from None
        self.split = _text_option(rule, "split", where, MAX_SEPARATOR_CHARS) if "split" in rule else None
        if self.split is not None and self.date_format is not None:
            raise TransformError(where, "a rule may either 'split' or 'format_date', not both")
        self.index = rule.get("index")
        if "index" in rule and (self.split is None or not isinstance(self.index, int) or isinstance(self.index, bool)):
            raise TransformError(where, "'index' must be an integer and goes with 'split'")

    def apply(self, envelope: Any, evaluator: Evaluator) -> Any:
        if self.kind == "const":
            return self.const
        if self.template is not None:
            return self.template.render(envelope, evaluator)
        assert self.path is not None
        value = self.path.search(envelope, evaluator)
        if value is not None:
            value = self._join(value, evaluator) if self.kind == "join" else self._convert(value)
        return self.default if value is None else value

    def _convert(self, value: Any) -> Any:
        if self.date_format is not None:
            if not isinstance(value, str):
                raise TransformError(self.where, f"format_date needs an ISO-8601 text date, got {type(value).__name__}")
            try:
                return FUNCTIONS.call_function("format_date", [value, self.date_format, self.tz])
            except FunctionError as exc:
                raise TransformError(self.where, str(exc)) from None
        if self.split is not None:
            if not isinstance(value, str):
                raise TransformError(self.where, f"split needs text, got {type(value).__name__}")
            pieces = value.split(self.split)
            if self.index is None:
                return pieces
            return pieces[self.index] if -len(pieces) <= self.index < len(pieces) else None
        return value

    def _join(self, items: Any, evaluator: Evaluator) -> str:
        if not isinstance(items, list):
            raise TransformError(self.where, f"join needs a list, got {type(items).__name__}")
        texts: list[str] = []
        size = 0
        for item in items:
            if self.item is not None:
                text = self.item.render(item, evaluator)
            elif item is None:
                continue
            else:
                try:
                    text = render_value(item)
                except SizeExceeded:
                    raise TransformError(self.where, "a list item is too large") from None
            size += len(text) + len(self.separator)
            if size > MAX_RENDERED_CHARS:
                raise TransformError(self.where, f"joined text is over {MAX_RENDERED_CHARS} characters")
            evaluator.charge(len(text))
            texts.append(text)
        return self.separator.join(texts)


class Mapping:
    """A compiled mapping spec; ``build`` turns one envelope into the object to send."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, "_Rule | Mapping"]) -> None:
        self._fields = fields

    @classmethod
    def compile(cls, spec: object, where: str = "mapping") -> "Mapping":
        """Check and compile ``spec``; raises TransformError under ``mapping.<field>``."""
        counter = [0]
        return cls._compile(spec, where, 1, counter)

    @classmethod
    def _compile(cls, spec: object, where: str, depth: int, counter: list[int]) -> "Mapping":
        if not isinstance(spec, dict):
            raise TransformError(where, f"must be an object of output field -> rule, not {type(spec).__name__}")
        if depth > MAX_MAPPING_DEPTH:
            raise TransformError(where, f"nested more than {MAX_MAPPING_DEPTH} objects deep")
        fields: dict[str, _Rule | Mapping] = {}
        for name, rule in spec.items():
            if not isinstance(name, str) or not name or len(name) > MAX_FIELD_CHARS:
                raise TransformError(where, f"output field names are text of 1-{MAX_FIELD_CHARS} characters")
            here = f"{where}.{name}"
            counter[0] += 1
            if counter[0] > MAX_MAPPING_RULES:
                raise TransformError(here, f"a mapping has at most {MAX_MAPPING_RULES} fields")
            if isinstance(rule, dict) and not any(k in rule for k in _KINDS):
                fields[name] = cls._compile(rule, here, depth + 1, counter)
            elif isinstance(rule, (str, dict)):
                fields[name] = _Rule(here, rule)
            else:
                raise TransformError(
                    here, f"a rule is a path (text) or an object, not {type(rule).__name__}; for a constant use {{\"const\": ...}}"
                )
        return cls(fields)

    def build(self, envelope: Any, evaluator: Evaluator) -> dict[str, Any]:
        """The mapped object for ``envelope``. Raises TransformError naming the failing field."""
        return {name: field.build(envelope, evaluator) if isinstance(field, Mapping) else field.apply(envelope, evaluator)
                for name, field in self._fields.items()}
