"""Per-subscription filters: one JMESPath expression over the envelope; a truthy result delivers.

Compiled once when the subscription is saved, evaluated in the producer for every event, on a
small work budget (``FILTER_MAX_STEPS``, ``FILTER_MAX_UNITS``). A filter whose evaluation fails
(wrong types, budget spent) does not match: the event is not delivered to that subscription,
and nothing is raised, so one subscriber's filter cannot break publishing for the others.
"""
from __future__ import annotations

from typing import Any

from .expressions import Evaluator, Expression, TransformError, compile_expression, is_truthy

__all__ = ["Filter", "FILTER_MAX_STEPS", "FILTER_MAX_UNITS"]

FILTER_MAX_STEPS = 10_000
FILTER_MAX_UNITS = 600_000


class Filter:
    """A compiled filter."""

    __slots__ = ("_expression",)

    def __init__(self, expression: Expression) -> None:
        self._expression = expression

    @classmethod
    def compile(cls, source: object) -> "Filter":
        """Check and compile ``source``; raises TransformError under ``filter``."""
        return cls(compile_expression(source, "filter"))

    @property
    def source(self) -> str:
        """The expression as the subscriber wrote it."""
        return self._expression.source

    def matches(self, envelope: Any) -> bool:
        """True if the expression's result is truthy; False if it is falsy or evaluation fails."""
        evaluator = Evaluator(max_steps=FILTER_MAX_STEPS, max_units=FILTER_MAX_UNITS)
        try:
            return is_truthy(self._expression.search(envelope, evaluator))
        except TransformError:
            return False
