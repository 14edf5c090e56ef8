"""Compile-time limits and the evaluation budget of subscriber-written JMESPath."""
from __future__ import annotations

import pytest

from webhooks.errors import ValidationError
from webhooks.transform import TransformError, compile_spec
from webhooks.transform.expressions import MAX_EXPRESSION_CHARS, Evaluator, compile_expression


def refusal(expression: str) -> str:
    with pytest.raises(TransformError) as caught:
        compile_spec({"filter": expression})
    assert set(caught.value.errors) == {"filter"}
    return caught.value.errors["filter"][0]


def test_transform_error_is_a_validation_error() -> None:
    assert issubclass(TransformError, ValidationError)


def test_syntax_error_shows_the_expression_with_a_caret_under_the_fault() -> None:
    # Given an expression with a stray bracket at column 10
    message = refusal("data.score ]")
    # Then the message names the column and draws the caret under it
    assert message == "Unexpected token: ] at column 11:\ndata.score ]\n           ^"


def test_incomplete_expression_puts_the_caret_at_the_end() -> None:
    assert refusal("data.tags[") == "incomplete expression:\ndata.tags[\n          ^"


def test_unclosed_literal_is_a_lexer_error_with_caret() -> None:
    message = refusal("data.topic == 'Billing")
    assert message.startswith("Unclosed ' delimiter at column 14:")
    assert message.endswith("\n              ^")


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 1000 + "a" + ")" * 1000,  # over the length cap as well as too deep
        "(" * 400 + "a" + ")" * 400,
        "[" * 100 + "]" * 100,
        "a" + "[]" * 400,
        "a" + "[*]" * 300,
        "!" * 900 + "a",
        "a" + " | b" * 100,
    ],
)
def test_deep_nesting_is_refused_at_compile_time(expression: str) -> None:
    assert "nested" in refusal(expression) or "characters, over the limit" in refusal(expression)


def test_a_huge_literal_is_refused_by_the_length_cap() -> None:
    message = refusal("data.topic == '" + "x" * 100_000 + "'")
    assert message == f"expression is 100016 characters, over the limit of {MAX_EXPRESSION_CHARS}"


def test_a_deeply_nested_json_literal_is_refused() -> None:
    assert "nested" in refusal("`" + "[" * 200 + "]" * 200 + "`")


def test_too_many_parts_are_refused() -> None:
    assert "more than 500 parts" in refusal("[" + ",".join(["a.b"] * 240) + "]")


def test_unknown_function_is_refused_and_known_ones_listed() -> None:
    message = refusal("eval(data)")
    assert message.startswith("unknown function eval(); known functions: abs,")
    assert "contains_any" in message and "format_date" in message


def test_wrong_argument_count_is_refused_at_compile_time() -> None:
    assert refusal("format_date(timestamp, '%Y')") == "function format_date() takes 3 argument(s), got 2"


@pytest.mark.parametrize("source", ["", "   ", None, 42, ["a"]])
def test_empty_or_non_text_expressions_are_refused(source: object) -> None:
    with pytest.raises(TransformError):
        compile_expression(source, "filter")


@pytest.mark.parametrize("fanout_stages", [12, 30])
def test_evaluation_that_blows_up_stops_on_the_budget(fanout_stages: int) -> None:
    # Given an expression doubling a list with every pipe (2**n items if unchecked)
    fan = "[@,@,@,@,@,@,@,@]"
    expression = compile_expression("a | " + " | ".join([fan + "[]"] * min(fanout_stages, 14)) + " | length(@)", "filter")
    # When it is evaluated on a budget
    with pytest.raises(TransformError) as caught:
        expression.search({"a": "x"}, Evaluator(max_steps=10_000, max_units=100_000))
    # Then it stops with our error, not after 8**14 items
    assert caught.value.errors == {"filter": ["evaluation exceeded its work budget"]}


def test_to_string_of_a_shared_structure_is_bounded() -> None:
    expression = compile_expression("to_string(a" + " | [@,@,@,@]" * 25 + ")", "mapping.x")
    with pytest.raises(TransformError):
        expression.search({"a": "x" * 100}, Evaluator(max_steps=10_000, max_units=100_000))


def test_comparing_shared_structures_is_bounded() -> None:
    side = "(a" + " | [@,@,@,@]" * 15 + ")"
    expression = compile_expression(f"{side} == {side}", "filter")
    with pytest.raises(TransformError):
        expression.search({"a": "x"}, Evaluator(max_steps=10_000, max_units=100_000))


def test_type_errors_do_not_quote_event_data() -> None:
    # Given a join over a list holding a number
    expression = compile_expression("join(', ', data.secrets)", "mapping.notes")
    # When it fails on data
    with pytest.raises(TransformError) as caught:
        expression.search({"data": {"secrets": ["hunter2", 7]}}, Evaluator(max_steps=100, max_units=1_000))
    # Then the message names the function and types, never the values
    assert "hunter2" not in str(caught.value)
    assert caught.value.errors["mapping.notes"][0].startswith("function join() got number, expects array-string")
