"""Per-subscription filter, body mapping, message templates and extra headers.

A ``TransformSpec`` is plain JSON stored with the subscription. ``Transform.compile`` checks
all of it up front (so a bad spec is refused when the subscription is saved, naming every bad
part); the compiled ``Transform`` then decides whether an event goes to the subscription
(``accepts``) and builds the bytes to sign and send (``body``). The language is JMESPath plus
a few functions (see ``functions``): data, not code, with compile-time size and depth limits and
a work budget per evaluation. See docs/transforms.md.

    TransformError (webhooks.errors.ValidationError)  every error of this package
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ..events import serialize
from .expressions import Evaluator, TransformError
from .filters import Filter, FilterBudget
from .functions import SizeExceeded, dumps, measure
from .headers import check_headers
from .mapping import Mapping
from .templates import PRESETS, TextTemplate

__all__ = ["TransformError", "TransformSpec", "Transform", "compile_spec", "MAX_BODY_BYTES", "MAX_SPEC_CHARS"]

MAX_BODY_BYTES = 262_144
MAX_SPEC_CHARS = 65_536
BODY_MAX_STEPS = 200_000
BODY_MAX_UNITS = 4_000_000

_FIELDS = ("filter", "mapping", "template", "text", "headers")
_TYPES: dict[str, type] = {"filter": str, "mapping": dict, "template": str, "text": str, "headers": dict}


@dataclass(frozen=True)
class TransformSpec:
    """What a subscription asks for; every field is optional.

    ``filter``: JMESPath over the envelope, truthy = deliver. ``mapping``: output field -> rule.
    ``template``: a preset name ("slack", "teams", "discord", "text") and ``text`` its text.
    ``headers``: static extra headers. No mapping and no template = the envelope as is.
    """

    filter: str | None = None
    mapping: dict[str, Any] | None = None
    template: str | None = None
    text: str | None = None
    headers: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as plain JSON-able data."""
        return {name: getattr(self, name) for name in _FIELDS if getattr(self, name) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TransformSpec":
        """Build from stored or user-given data; ``None`` is the empty spec.

        Raises TransformError for unknown keys or wrong top-level types (deeper checks are ``Transform.compile``'s).
        """
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise TransformError("transform", f"must be an object, not {type(d).__name__}")
        errors: dict[str, list[str]] = {}
        for key in d:
            if key not in _FIELDS:
                errors[str(key)] = [f"unknown field; known fields: {', '.join(_FIELDS)}"]
        for name, kind in _TYPES.items():
            if d.get(name) is not None and not isinstance(d[name], kind):
                errors[name] = [f"must be {'an object' if kind is dict else 'text'}, not {type(d[name]).__name__}"]
        if errors:
            raise _combined(errors)
        return cls(**{name: d.get(name) for name in _FIELDS})


def _combined(errors: dict[str, list[str]]) -> TransformError:
    first = next(iter(errors))
    error = TransformError(first, errors[first][0])
    error.errors = errors
    if len(errors) > 1:
        error.args = (f"{len(errors)} problems, first {first}: {errors[first][0]}",)
    return error


class Transform:
    """A compiled ``TransformSpec``: no global state, safe to share between threads."""

    __slots__ = ("spec", "_filter", "_mapping", "_preset", "_text", "_headers")

    def __init__(self, spec: TransformSpec) -> None:
        self.spec = spec
        self._filter: Filter | None = None
        self._mapping: Mapping | None = None
        self._text: TextTemplate | None = None
        self._preset = PRESETS.get(spec.template) if spec.template is not None else None
        self._headers: dict[str, str] = {}

    @classmethod
    def compile(cls, spec: TransformSpec) -> "Transform":
        """Check and compile every part of ``spec``.

        Raises TransformError whose ``errors`` names every bad part ("filter", "mapping.<field>",
        "template", "text", "headers.<name>"); syntax errors show the expression with a caret.
        """
        errors: dict[str, list[str]] = {}
        transform = cls(spec)
        steps = [
            lambda: setattr(transform, "_filter", Filter.compile(spec.filter) if spec.filter is not None else None),
            lambda: setattr(transform, "_mapping", Mapping.compile(spec.mapping) if spec.mapping is not None else None),
            lambda: cls._compile_template(transform, spec),
            lambda: setattr(transform, "_headers", check_headers(spec.headers)),
        ]
        for step in steps:
            try:
                step()
            except TransformError as exc:
                errors.update(exc.errors)
        if errors:
            raise _combined(errors)
        try:
            measure(spec.to_dict(), MAX_SPEC_CHARS)
        except SizeExceeded:
            raise TransformError("transform", f"the spec is over {MAX_SPEC_CHARS} characters") from None
        return transform

    @staticmethod
    def _compile_template(transform: "Transform", spec: TransformSpec) -> None:
        if spec.template is None:
            if spec.text is not None:
                raise TransformError("text", "needs a template preset: slack, teams, discord or text")
            return
        if spec.template not in PRESETS:
            raise TransformError("template", f"unknown preset {spec.template!r}; one of {', '.join(PRESETS)}")
        if spec.mapping is not None:
            raise TransformError("template", "cannot be combined with a mapping; use one or the other")
        if spec.text is None:
            raise TransformError("text", "is required when a template is set")
        transform._text = TextTemplate.compile(spec.text, "text")

    @property
    def is_identity(self) -> bool:
        """True when the body is the envelope as is (no mapping, no template)."""
        return self._mapping is None and self._preset is None

    def accepts(self, envelope: dict[str, Any]) -> bool:
        """Whether this subscription gets ``envelope``: no filter -> True; a failing filter -> False."""
        return True if self._filter is None else self._filter.matches(envelope)

    def decide(self, envelope: dict[str, Any], budget: FilterBudget) -> bool | None:
        """``accepts`` on an account's shared filter budget: None when the budget was spent
        before the filter decided (see ``filters.FilterBudget``)."""
        return True if self._filter is None else self._filter.decide(envelope, budget)

    def headers(self) -> dict[str, str]:
        """The static extra headers (a copy)."""
        return dict(self._headers)

    def body(self, envelope: dict[str, Any]) -> bytes:
        """The bytes to sign and send: the envelope as ``webhooks.events.serialize`` gives it, or the
        JSON of the mapped object / preset message.

        Raises TransformError when evaluation fails or the body is over ``MAX_BODY_BYTES``.
        """
        if self.is_identity:
            try:
                return serialize(envelope)
            except ValidationError as exc:
                raise TransformError("body", str(exc)) from None
        where = "mapping" if self._mapping is not None else "template"
        evaluator = Evaluator(max_steps=BODY_MAX_STEPS, max_units=BODY_MAX_UNITS)
        try:
            if self._mapping is not None:
                shaped: Any = self._mapping.build(envelope, evaluator)
            else:
                assert self._preset is not None and self._text is not None
                shaped = self._preset.body(self._text, envelope, evaluator)
            measure(shaped, MAX_BODY_BYTES)
            encoded = dumps(shaped).encode("utf-8")
        except TransformError:
            raise
        except SizeExceeded:
            raise TransformError(where, f"the body is over {MAX_BODY_BYTES} bytes") from None
        except Exception as exc:  # NaN from the data, a lone surrogate, anything odd in the event
            raise TransformError(where, f"the body cannot be encoded as JSON ({type(exc).__name__})") from None
        if len(encoded) > MAX_BODY_BYTES:
            raise TransformError(where, f"the body is {len(encoded)} bytes, over the limit of {MAX_BODY_BYTES}")
        return encoded


def compile_spec(spec: dict[str, Any] | TransformSpec | None) -> Transform:
    """``Transform.compile`` for a stored dict, a ``TransformSpec`` or ``None`` (identity, no filter)."""
    if not isinstance(spec, TransformSpec):
        spec = TransformSpec.from_dict(spec)
    return Transform.compile(spec)
