"""Paths checked against the event catalogue: a filter or mapping that reads a field no
subscribed event type has is refused when it is saved, with a suggestion.

A typo such as ``data.visitor.emial`` is valid JMESPath and evaluates to null on every event,
so the filter silently never matches. For catalogue event types we know every field (the
marshmallow schemas in ``webhooks.events``), so we walk each expression's syntax tree over the
*shape* of the envelope and report every field that cannot exist, with the closest real path
(``difflib``). Custom events (``custom.*``) and ``*`` carry any JSON: they stay free-form.

The walk is conservative: whatever it cannot follow (function results, literals, wildcards
over objects) becomes "anything", so a path is refused only when no subscribed type has it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Union

import jmespath
from marshmallow import Schema, fields

from .. import events as catalogue
from .expressions import TransformError

__all__ = ["catalogue_types", "check_paths", "path_problems"]


class _Any:
    """Free-form JSON: every path may exist."""


class _Leaf:
    """A scalar (text, number, boolean, date): it has no fields."""


ANY = _Any()
LEAF = _Leaf()


@dataclass(frozen=True)
class Obj:
    fields: dict[str, "Shape"]


@dataclass(frozen=True)
class Arr:
    item: "Shape"


Shape = Union[_Any, _Leaf, Obj, Arr]


def _field_shape(f: fields.Field) -> Shape:
    if isinstance(f, fields.Nested):
        nested = f.nested
        schema = nested() if isinstance(nested, type) else nested
        return _schema_shape(schema) if isinstance(schema, Schema) else ANY
    if isinstance(f, fields.List):
        return Arr(_field_shape(f.inner))
    if isinstance(f, (fields.String, fields.Number, fields.Boolean, fields.DateTime)):
        return LEAF
    return ANY  # Dict (pre-chat answers), custom fields: any JSON


def _schema_shape(schema: Schema) -> Obj:
    return Obj({name: _field_shape(f) for name, f in schema.fields.items()})


def _merge(a: Shape, b: Shape) -> Shape:
    if a is ANY or b is ANY:
        return ANY
    if isinstance(a, Obj) and isinstance(b, Obj):
        return Obj({k: _merge(a.fields[k], b.fields[k]) if k in a.fields and k in b.fields else a.fields.get(k) or b.fields[k]
                    for k in {**a.fields, **b.fields}})
    if isinstance(a, Arr) and isinstance(b, Arr):
        return Arr(_merge(a.item, b.item))
    if a is LEAF:
        return b
    if b is LEAF:
        return a
    return ANY  # an object in one type, a list in another


def envelope_shape(event_types: Iterable[str]) -> Shape:
    """The union of the envelopes of ``event_types`` (catalogue types only)."""
    data: Shape = LEAF
    for t in event_types:
        data = _merge(data, _schema_shape(catalogue._SCHEMAS[t]))
    return Obj({"id": LEAF, "type": LEAF, "timestamp": LEAF, "data": data})


def catalogue_types(patterns: Iterable[str]) -> list[str] | None:
    """The catalogue event types ``patterns`` subscribe to, or None when any of them lets in
    free-form events (``*``, ``custom.…``, a prefix covering ``custom.``)."""
    out: list[str] = []
    for p in patterns:
        if p == "*":
            return None
        if p.endswith(".*"):
            prefix = p[:-1]
            if catalogue.CUSTOM_PREFIX.startswith(prefix) or prefix.startswith(catalogue.CUSTOM_PREFIX):
                return None
            out += [t for t in catalogue.EVENT_TYPES if t.startswith(prefix)]
        elif p.startswith(catalogue.CUSTOM_PREFIX) or p not in catalogue.EVENT_TYPES:
            return None
        else:
            out.append(p)
    return list(dict.fromkeys(out)) or None


def _all_paths(shape: Shape, label: str, depth: int = 0) -> list[str]:
    if isinstance(shape, Obj) and depth < 8:
        out = []
        for name, sub in shape.fields.items():
            here = f"{label}.{name}" if label else name
            out += [here] + _all_paths(sub, here, depth + 1)
        return out
    if isinstance(shape, Arr) and depth < 8:
        return _all_paths(shape.item, f"{label}[]", depth + 1)
    return []


class _Walk:
    """Follows one expression over a shape, collecting the paths that cannot exist."""

    def __init__(self, root: Shape) -> None:
        self.root = root
        self.missing: list[tuple[str, str]] = []  # (the path written, a suggestion or "")

    def miss(self, label: str | None, name: str, shape: Shape, where_list: bool = False) -> Shape:
        written = f"{label}.{name}" if label else name
        suggestion = ""
        if where_list and isinstance(shape, Arr) and isinstance(shape.item, Obj) and name in shape.item.fields:
            suggestion = f"{label}[].{name}"
        elif isinstance(shape, Obj):
            close = difflib.get_close_matches(name, list(shape.fields), n=1, cutoff=0.6)
            if close:
                suggestion = f"{label}.{close[0]}" if label else close[0]
        if not suggestion and label is not None:
            close = difflib.get_close_matches(written, _all_paths(self.root, ""), n=1, cutoff=0.75)
            suggestion = close[0] if close else ""
        self.missing.append((written, suggestion))
        return ANY

    def field(self, name: str, shape: Shape, label: str | None) -> tuple[Shape, str | None]:
        here = f"{label}.{name}" if label else name
        if shape is ANY:
            return ANY, None
        if isinstance(shape, Obj):
            if name in shape.fields:
                return shape.fields[name], here
            return self.miss(label, name, shape), None
        return self.miss(label, name, shape, where_list=isinstance(shape, Arr)), None

    def visit(self, node: Any, shape: Shape, label: str | None) -> tuple[Shape, str | None]:
        if not isinstance(node, dict):
            return ANY, None
        kind = node.get("type")
        kids = node.get("children", [])
        if kind == "field":
            return self.field(node["value"], shape, label)
        if kind == "subexpression":
            for child in kids:
                shape, label = self.visit(child, shape, label)
            return shape, label
        if kind == "pipe":
            left, left_label = self.visit(kids[0], shape, label)
            return self.visit(kids[1], left, left_label)
        if kind in ("identity", "current"):
            return shape, label
        if kind == "index_expression":
            base, base_label = self.visit(kids[0], shape, label)
            return self.visit(kids[1], base, base_label)
        if kind == "index":
            return (shape.item, f"{label}[{node['value']}]" if label else None) if isinstance(shape, Arr) else (ANY, None)
        if kind == "slice":
            return (shape, label) if isinstance(shape, Arr) else (ANY, None)
        if kind == "flatten":
            base, base_label = self.visit(kids[0], shape, label)
            if isinstance(base, Arr):
                inner = base.item.item if isinstance(base.item, Arr) else base.item
                return Arr(inner), base_label
            return ANY, None
        if kind in ("projection", "filter_projection"):
            base, base_label = self.visit(kids[0], shape, label)
            if isinstance(base, Arr):
                item, item_label = base.item, (f"{base_label.removesuffix('[]')}[]" if base_label else None)
            else:
                item, item_label = ANY, None
            if kind == "filter_projection":
                self.visit(kids[2], item, item_label)
            result, result_label = self.visit(kids[1], item, item_label)
            return Arr(result), result_label
        if kind == "value_projection":
            self.visit(kids[0], shape, label)
            self.visit(kids[1], ANY, None)
            return ANY, None
        if kind == "function_expression":
            element: Shape = ANY
            element_label: str | None = None
            for child in kids:
                if isinstance(child, dict) and child.get("type") == "expref":
                    self.visit(child["children"][0], element, element_label)
                else:
                    got, got_label = self.visit(child, shape, label)
                    if isinstance(got, Arr) and element is ANY:
                        element, element_label = got.item, (f"{got_label.removesuffix('[]')}[]" if got_label else None)
            return ANY, None
        if kind == "multi_select_dict":
            for pair in kids:
                for child in pair.get("children", []):
                    self.visit(child, shape, label)
            return ANY, None
        # comparators, and/or/not, multi-select lists, literals: check what they read, then anything
        for child in kids:
            self.visit(child, shape, label)
        return ANY, None


def _expressions(spec: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(where, expression, list path or None) for every expression a spec holds; a join's item
    placeholders are evaluated on each element of the list at ``list path``."""
    from .templates import TextTemplate

    out: list[tuple[str, str, str | None]] = []
    if isinstance(spec.get("filter"), str):
        out.append(("filter", spec["filter"], None))
    if isinstance(spec.get("text"), str):
        out += [("text", e, None) for e in TextTemplate.compile(spec["text"], "text").expressions()]

    def rules(mapping: Any, where: str) -> None:
        if not isinstance(mapping, dict):
            return
        for name, rule in mapping.items():
            here = f"{where}.{name}"
            if isinstance(rule, str):
                out.append((here, rule, None))
            elif isinstance(rule, dict) and any(k in rule for k in ("path", "const", "template", "join")):
                if isinstance(rule.get("path"), str):
                    out.append((here, rule["path"], None))
                if isinstance(rule.get("template"), str):
                    out.extend((here, e, None) for e in TextTemplate.compile(rule["template"], here).expressions())
                if "join" in rule and isinstance(rule.get("item"), str) and isinstance(rule.get("path"), str):
                    out.extend((here, e, rule["path"]) for e in TextTemplate.compile(rule["item"], here).expressions())
            elif isinstance(rule, dict):
                rules(rule, here)

    rules(spec.get("mapping"), "mapping")
    return out


def path_problems(spec: dict[str, Any] | None, event_types: Iterable[str]) -> dict[str, list[str]]:
    """{where: [sentence, ...]} for every path in ``spec`` that no type of ``event_types`` has
    (empty when they let in free-form events). ``spec`` must already compile."""
    if not spec:
        return {}
    types = catalogue_types(event_types)
    if types is None:
        return {}
    # send-test delivers a webhook.test event through every subscription's transform: its fields exist too
    root = envelope_shape([*types, "webhook.test"])
    named = " or ".join(types)
    problems: dict[str, list[str]] = {}
    for where, source, list_path in _expressions(spec):
        walk = _Walk(root)
        start, label = root, ""
        if list_path is not None:
            items, items_label = _Walk(root).visit(jmespath.compile(list_path).parsed, root, "")
            start, label = (items.item, f"{items_label.removesuffix('[]')}[]" if items_label else None) \
                if isinstance(items, Arr) else (ANY, None)
        walk.visit(jmespath.compile(source).parsed, start, label)
        for written, suggestion in dict.fromkeys(walk.missing):
            hint = f"; did you mean `{suggestion}`?" if suggestion else ""
            problems.setdefault(where, []).append(f"`{written}` cannot exist in {named} events{hint}")
    return problems


def check_paths(spec: dict[str, Any] | None, event_types: Iterable[str]) -> None:
    """Raise TransformError (naming each part, with a suggestion) when ``spec`` reads a path
    that none of ``event_types`` has. Free-form types (``custom.*``, ``*``) pass."""
    problems = path_problems(spec, event_types)
    if not problems:
        return
    first = next(iter(problems))
    error = TransformError(first, problems[first][0])
    error.errors = problems
    count = sum(len(v) for v in problems.values())
    if count > 1:
        error.args = (f"{count} problems, first {first}: {problems[first][0]}",)
    raise error
