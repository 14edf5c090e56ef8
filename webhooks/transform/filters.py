"""Per-subscription filters: one JMESPath expression over the envelope; a truthy result delivers.

Compiled once when the subscription is saved, evaluated in the producer for every event, on a
small work budget (``FILTER_MAX_STEPS``, ``FILTER_MAX_UNITS``). A filter whose evaluation fails
(wrong types, budget spent) does not match: the event is not delivered to that subscription,
and nothing is raised, so one subscriber's filter cannot break publishing for the others.

All the filters of one account also share one budget per published event (``FilterBudget``:
``PUBLISH_FILTER_STEPS``, ``PUBLISH_FILTER_UNITS``, about five filters at their own limit), so
an account with a hundred heavy filters cannot make one publish() take seconds. The producer
evaluates filters oldest subscription first; once the shared budget is spent, the remaining
subscriptions are enqueued **unfiltered** (their event types still have to match): an event is
never dropped because someone else's filter was expensive. See docs/transforms.md.
"""
from __future__ import annotations

from typing import Any

from .expressions import Evaluator, Expression, TransformError, compile_expression, is_truthy

__all__ = ["Filter", "FilterBudget", "FILTER_MAX_STEPS", "FILTER_MAX_UNITS", "PUBLISH_FILTER_STEPS", "PUBLISH_FILTER_UNITS"]

FILTER_MAX_STEPS = 10_000
FILTER_MAX_UNITS = 600_000
PUBLISH_FILTER_STEPS = 5 * FILTER_MAX_STEPS
PUBLISH_FILTER_UNITS = 5 * FILTER_MAX_UNITS


class FilterBudget:
    """The work every filter of one account may spend, together, on one published event.

    ``steps_spent`` / ``units_spent`` count what was used; ``unfiltered`` counts the
    subscriptions whose filter was not run (or not finished) because the budget was spent.
    """

    __slots__ = ("steps_left", "units_left", "steps_spent", "units_spent", "unfiltered")

    def __init__(self, steps: int = PUBLISH_FILTER_STEPS, units: int = PUBLISH_FILTER_UNITS) -> None:
        self.steps_left = steps
        self.units_left = units
        self.steps_spent = 0
        self.units_spent = 0
        self.unfiltered = 0

    @property
    def exhausted(self) -> bool:
        """True once no filter can run on what is left."""
        return self.steps_left <= 0 or self.units_left <= 0


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

    def decide(self, envelope: Any, budget: FilterBudget) -> bool | None:
        """Like ``matches``, on the shared ``budget``: None when the budget (not this filter's own
        limit) ran out before the filter could decide; the caller then enqueues unfiltered."""
        if budget.exhausted:
            budget.unfiltered += 1
            return None
        steps = min(FILTER_MAX_STEPS, budget.steps_left)
        units = min(FILTER_MAX_UNITS, budget.units_left)
        evaluator = Evaluator(max_steps=steps, max_units=units)
        result: bool | None
        try:
            result = is_truthy(self._expression.search(envelope, evaluator))
        except TransformError:
            shared_ran_out = (evaluator.steps_left < 0 and steps < FILTER_MAX_STEPS) or (
                evaluator.units_left < 0 and units < FILTER_MAX_UNITS
            )
            result = None if shared_ran_out else False
        used_steps = steps - max(evaluator.steps_left, 0)
        used_units = units - max(evaluator.units_left, 0)
        budget.steps_left -= used_steps
        budget.units_left -= used_units
        budget.steps_spent += used_steps
        budget.units_spent += used_units
        if result is None:
            budget.unfiltered += 1
        return result

    def matches(self, envelope: Any) -> bool:
        """True if the expression's result is truthy; False if it is falsy or evaluation fails."""
        evaluator = Evaluator(max_steps=FILTER_MAX_STEPS, max_units=FILTER_MAX_UNITS)
        try:
            return is_truthy(self._expression.search(envelope, evaluator))
        except TransformError:
            return False
