"""TransformSpec as stored data, and Transform.compile reporting every bad part at once."""
from __future__ import annotations

import pytest

import webhooks.transform as transform_pkg
from webhooks.transform import Transform, TransformError, TransformSpec, compile_spec


def test_public_api_is_exactly_this() -> None:
    assert sorted(transform_pkg.__all__) == sorted(
        ["TransformError", "TransformSpec", "Transform", "compile_spec", "MAX_BODY_BYTES", "MAX_SPEC_CHARS"]
    )
    for name in transform_pkg.__all__:
        assert hasattr(transform_pkg, name)


def test_spec_round_trips_through_a_dict() -> None:
    spec = TransformSpec(filter="data.score <= `2`", template="slack", text="{data.score}", headers={"X-A": "1"})
    assert spec.to_dict() == {"filter": "data.score <= `2`", "template": "slack", "text": "{data.score}", "headers": {"X-A": "1"}}
    assert TransformSpec.from_dict(spec.to_dict()) == spec
    assert TransformSpec.from_dict(None) == TransformSpec() and TransformSpec().to_dict() == {}


def test_unknown_keys_and_wrong_types_are_refused_by_from_dict() -> None:
    with pytest.raises(TransformError) as caught:
        TransformSpec.from_dict({"filtre": "x", "mapping": "data", "headers": ["X-A"]})
    assert set(caught.value.errors) == {"filtre", "mapping", "headers"}
    with pytest.raises(TransformError):
        TransformSpec.from_dict(["filter"])  # type: ignore[arg-type]


def test_compile_reports_every_bad_part() -> None:
    # Given a spec wrong in four places
    spec = {"filter": "data.x ]", "mapping": {"a": 1}, "text": "hi", "headers": {"Authorization": "Bearer x"}}
    # When it is compiled
    with pytest.raises(TransformError) as caught:
        compile_spec(spec)
    # Then each bad part is named, and the message says how many
    assert set(caught.value.errors) == {"filter", "mapping.a", "text", "headers.Authorization"}
    assert str(caught.value).startswith("4 problems, first filter: Unexpected token: ]")
    assert "Bearer x" not in str(caught.value.errors)


def test_compile_accepts_a_spec_object_and_compile_spec_a_dict() -> None:
    spec = TransformSpec(filter="type == 'message.sent'")
    assert isinstance(Transform.compile(spec), Transform)
    assert compile_spec(spec).spec == compile_spec(spec.to_dict()).spec == spec


def test_whole_spec_size_is_capped() -> None:
    mapping = {f"f{i}": {"const": "x" * 16_000} for i in range(5)}
    with pytest.raises(TransformError) as caught:
        compile_spec({"mapping": mapping})
    assert caught.value.errors == {"transform": ["the spec is over 65536 characters"]}


def test_identity_body_of_a_non_json_envelope_is_our_error() -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec(None).body({"id": "evt_1", "data": {"x": float("inf")}})
    assert list(caught.value.errors) == ["body"]
