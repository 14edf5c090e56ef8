"""JMESPath expressions made safe to accept from a subscriber: compiled with limits, evaluated on a budget.

Compile time refuses what could be slow or deep before anything runs: longer than
``MAX_EXPRESSION_CHARS``, brackets nested deeper than ``MAX_AST_DEPTH``, an AST deeper than
``MAX_AST_DEPTH`` or larger than ``MAX_AST_NODES``, an unknown function or a wrong number of
arguments. Evaluation runs on an ``Evaluator`` that counts node visits and the size of what
functions, comparisons, flattens and slices touch, so no expression can do unbounded work
(``[@, @][]`` piped a hundred times would otherwise build a list of 2**100 items).

``TransformError`` lives here because every other module of the package raises it;
``webhooks.transform`` re-exports it.
"""
from __future__ import annotations

from typing import Any

import jmespath
from jmespath import exceptions as jp_errors
from jmespath.functions import TYPES_MAP
from jmespath.lexer import Lexer
from jmespath.visitor import Options, TreeInterpreter

from ..errors import ValidationError
from .functions import FUNCTIONS, SizeExceeded, measure

__all__ = [
    "TransformError",
    "Expression",
    "Evaluator",
    "compile_expression",
    "is_truthy",
    "MAX_EXPRESSION_CHARS",
    "MAX_AST_DEPTH",
    "MAX_AST_NODES",
]

MAX_EXPRESSION_CHARS = 1_000
MAX_AST_DEPTH = 32
MAX_AST_NODES = 500

_OPENERS = {"lparen", "lbracket", "lbrace", "filter"}
_CLOSERS = {"rparen", "rbracket", "rbrace"}
_CARET_WINDOW_CHARS = 60


class TransformError(ValidationError):
    """A filter, mapping, template or header that cannot compile, or an evaluation that failed.

    ``errors`` names the part at fault: ``{"filter": [...]}``, ``{"mapping.<field>": [...]}``,
    ``{"template": [...]}``, ``{"text": [...]}`` or ``{"headers.<name>": [...]}``. Messages
    quote the subscriber's own spec, never event data.
    """

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}", {where: [message]})
        self.where = where


class BudgetExceeded(Exception):
    """Internal: an evaluation used up its steps or size units."""


def _caret(source: str, position: int) -> str:
    """The expression (or a window of it) on one line and a caret under ``position`` below."""
    position = max(0, min(position, len(source)))
    start = max(0, position - _CARET_WINDOW_CHARS // 2)
    shown = source[start : start + _CARET_WINDOW_CHARS]
    prefix = "…" if start else ""
    suffix = "…" if start + _CARET_WINDOW_CHARS < len(source) else ""
    return f"{prefix}{shown}{suffix}\n{' ' * (len(prefix) + position - start)}^"


def _parse_error_message(source: str, exc: jp_errors.ParseError) -> str:
    if isinstance(exc, jp_errors.LexerError):
        return f"{exc.message} at column {exc.lexer_position}:\n{_caret(source, exc.lexer_position)}"
    if isinstance(exc, jp_errors.IncompleteExpressionError):
        return f"incomplete expression:\n{_caret(source, len(source))}"
    if isinstance(exc, jp_errors.ArityError):
        return str(exc)
    detail = exc.msg if exc.msg != jp_errors.ParseError._ERROR_MESSAGE else f"unexpected token {exc.token_value!r}"
    return f"{detail} at column {exc.lex_position}:\n{_caret(source, exc.lex_position)}"


def _check_bracket_depth(source: str, where: str) -> None:
    """Refuse deep bracket nesting from the tokens alone, before the recursive parser sees it."""
    depth = 0
    for token in Lexer().tokenize(source):
        kind = token["type"]
        if kind in _OPENERS:
            depth += 1
            if depth > MAX_AST_DEPTH:
                raise TransformError(
                    where,
                    f"nested more than {MAX_AST_DEPTH} levels deep at column {token['start']}:\n"
                    f"{_caret(source, token['start'])}",
                )
        elif kind in _CLOSERS:
            depth -= 1


def _value_depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _check_ast(source: str, ast: dict[str, Any], where: str) -> None:
    """Walk the AST without recursion: depth, size, literals and functions within limits."""
    nodes = 0
    stack = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_AST_DEPTH:
            raise TransformError(where, f"expression is nested more than {MAX_AST_DEPTH} levels deep: {source[:80]!r}")
        if nodes > MAX_AST_NODES:
            raise TransformError(where, f"expression has more than {MAX_AST_NODES} parts: {source[:80]!r}")
        kind = node["type"]
        if kind == "literal" and _value_depth(node["value"]) > MAX_AST_DEPTH:
            raise TransformError(where, f"a literal is nested more than {MAX_AST_DEPTH} levels deep")
        if kind == "function_expression":
            _check_call(node["value"], len(node["children"]), where)
        stack.extend((child, depth + 1) for child in node["children"] if isinstance(child, dict))


def _check_call(name: str, given: int, where: str) -> None:
    entry = FUNCTIONS.FUNCTION_TABLE.get(name)
    if entry is None:
        known = ", ".join(sorted(FUNCTIONS.FUNCTION_TABLE))
        raise TransformError(where, f"unknown function {name}(); known functions: {known}")
    signature = entry["signature"]
    variadic = bool(signature) and bool(signature[-1].get("variadic"))
    if (variadic and given < len(signature)) or (not variadic and given != len(signature)):
        expected = f"at least {len(signature)}" if variadic else str(len(signature))
        raise TransformError(where, f"function {name}() takes {expected} argument(s), got {given}")


class Expression:
    """A compiled, checked JMESPath expression; ``source`` is what the subscriber wrote."""

    __slots__ = ("source", "where", "_ast")

    def __init__(self, source: str, where: str, ast: dict[str, Any]) -> None:
        self.source = source
        self.where = where
        self._ast = ast

    def search(self, value: Any, evaluator: "Evaluator") -> Any:
        """Evaluate over ``value`` on ``evaluator``'s budget.

        Raises TransformError (naming ``where``, never quoting ``value``) on any failure.
        """
        try:
            return evaluator.visit(self._ast, value)
        except BudgetExceeded:
            raise TransformError(self.where, "evaluation exceeded its work budget") from None
        except jp_errors.JMESPathTypeError as exc:
            raise TransformError(
                self.where,
                f"function {exc.function_name}() got {TYPES_MAP.get(exc.actual_type, exc.actual_type)}, "
                f"expects {' or '.join(exc.expected_types)}",
            ) from None
        except jp_errors.JMESPathError as exc:
            raise TransformError(self.where, f"evaluation failed: {exc}") from None
        except RecursionError:
            raise TransformError(self.where, "evaluation failed: data nested too deeply") from None
        except Exception as exc:  # anything else jmespath or Python raises on odd data
            raise TransformError(self.where, f"evaluation failed ({type(exc).__name__})") from None


def compile_expression(source: object, where: str) -> Expression:
    """Compile ``source`` as a checked JMESPath expression; errors are reported under ``where``.

    Raises TransformError with a caret under the fault for syntax errors.
    """
    if not isinstance(source, str):
        raise TransformError(where, f"must be a JMESPath expression (a string), not {type(source).__name__}")
    if not source.strip():
        raise TransformError(where, "must not be empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise TransformError(where, f"expression is {len(source)} characters, over the limit of {MAX_EXPRESSION_CHARS}")
    try:
        _check_bracket_depth(source, where)
        parsed = jmespath.compile(source)
    except TransformError:
        raise
    except jp_errors.ParseError as exc:
        raise TransformError(where, _parse_error_message(source, exc)) from None
    except RecursionError:
        raise TransformError(where, "expression is nested too deeply") from None
    except Exception as exc:  # the lexer and parser raise a few undocumented kinds on odd input
        raise TransformError(where, f"invalid expression ({type(exc).__name__}): {source[:80]!r}") from None
    _check_ast(source, parsed.parsed, where)
    return Expression(source, where, parsed.parsed)


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 too) is true."""
    return not (value is None or value is False or value == "" or value == [] or value == {})


class Evaluator(TreeInterpreter):
    """A JMESPath tree interpreter with a work budget, shared by every expression of one evaluation.

    ``max_steps`` bounds node visits (projections visit once per element); ``max_units`` bounds
    the size of values handed to functions and comparisons and of lists built by flatten and slice.
    """

    def __init__(self, *, max_steps: int, max_units: int) -> None:
        super().__init__(Options(custom_functions=FUNCTIONS))
        self.steps_left = max_steps
        self.units_left = max_units

    def charge(self, units: int) -> None:
        """Spend ``units``; raises BudgetExceeded when the budget is gone."""
        self.units_left -= units
        if self.units_left < 0:
            raise BudgetExceeded()

    def charge_value(self, value: Any) -> None:
        """Spend the (bounded) size of ``value``; lists and dicts are walked, shared parts counted each time."""
        if isinstance(value, (list, dict, str)):
            try:
                self.charge(measure(value, max(self.units_left, 0)))
            except SizeExceeded:
                raise BudgetExceeded() from None

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise BudgetExceeded()
        return super().visit(node, *args, **kwargs)

    def visit_function_expression(self, node: dict[str, Any], value: Any) -> Any:
        args = [self.visit(child, value) for child in node["children"]]
        for arg in args:
            self.charge_value(arg)
        return self._functions.call_function(node["value"], args)

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if isinstance(left, (list, dict)):
            self.charge_value(left)
        if isinstance(right, (list, dict)):
            self.charge_value(right)
        return _compare(node["value"], left, right, self.COMPARATOR_FUNC[node["value"]])

    def visit_flatten(self, node: dict[str, Any], value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                self.charge(len(element))
                merged.extend(element)
            else:
                merged.append(element)
        self.charge(len(base))
        return merged

    def visit_slice(self, node: dict[str, Any], value: Any) -> Any:
        result = super().visit_slice(node, value)
        if isinstance(result, list):
            self.charge(len(result))
        return result


def _compare(op: str, left: Any, right: Any, func: Any) -> Any:
    """jmespath's comparison, except that ordering mixed types gives null instead of a TypeError."""
    if op in TreeInterpreter._EQUALITY_OPS:
        return func(left, right)
    if not (_orderable(left) and _orderable(right)) or isinstance(left, str) != isinstance(right, str):
        return None
    return func(left, right)


def _orderable(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)
