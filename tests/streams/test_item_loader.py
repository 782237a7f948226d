"""The compiled item loader gives exactly what marshmallow gives.

For every stream's item schema, generated items (the published examples, then
random edits: values of every JSON type and of tricky shapes put in known,
nested and unknown keys, keys removed) are loaded both ways. Whenever the fast
path answers, marshmallow accepts the item and returns an equal result, value
types included; `ItemLoader.load` always ends as `Schema.load` does, result or
field errors. The valid examples must take the fast path, or the benchmark
gain would be a fallback in disguise.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validates_schema

from backend.streams.item_loader import ItemLoader
from backend.streams.registry import STREAMS

EXAMPLES = Path(__file__).resolve().parents[2] / "api_spec" / "examples"
SEEDS: dict[str, dict[str, Any]] = {}
for path in EXAMPLES.glob("*.json"):
    doc = json.loads(path.read_text())
    if "stream" in doc:
        SEEDS[doc["stream"]] = doc["example"]

TRICKY: list[Any] = [
    None,
    "",
    " ",
    "x",
    "1.5",
    "2",
    "true",
    0,
    1,
    -1,
    2,
    0.0,
    0.05,
    0.1,
    2.5,
    7.99,
    8,
    8.0001,
    45,
    200.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    10**400,
    True,
    False,
    [],
    {},
    ["cough"],
    [None],
    ["a" * 41],
    {"fev1_l": 2.0},
    "a" * 101,
    "a" * 2001,
    "2025-01-01T08:00:00",
    "2025-01-01T08:00:00+01:00",
    "2025-01-01T08:00:00Z",
    "2025-01-01",
    "20250101T080000+0100",
    "2025-13-01T08:00:00+00:00",
    "2025-03-30T02:30:00+01:00",
    "0B5C1A7E-3F44-4D1E-9A55-8A1F3B2F6C01",
    "{0b5c1a7e-3f44-4d1e-9a55-8a1f3b2f6c01}",
    "urn:uuid:0b5c1a7e-3f44-4d1e-9a55-8a1f3b2f6c01",
    "0b5c1a7e3f444d1e9a558a1f3b2f6c01",
    "home",
    "clinic",
    "taken",
    "missed",
    "start",
    "stop",
    "dose_change",
    "mouth_ulcers",
    "severe",
    "mild",
    "pneumothorax",
    "lc_ms_ms",
    "unknown",
]


def _tricky() -> st.SearchStrategy[Any]:
    # by index: sampled_from would treat 1, 1.0 and True (0, 0.0, False) as one value
    return st.integers(0, len(TRICKY) - 1).map(lambda i: TRICKY[i])


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _outcome(load: Any, item: Any) -> tuple[str, Any]:
    try:
        return "ok", load(item)
    except ValidationError as exc:
        return "invalid", exc.normalized_messages()  # type: ignore[no-untyped-call]


@st.composite
def _edited(draw: st.DrawFn, seed: dict[str, Any], keys: list[str]) -> Any:
    item: Any = copy.deepcopy(seed)
    for _ in range(draw(st.integers(0, 3))):
        target = item
        # sometimes edit inside a nested object (device, a blow)
        nested = [k for k in target if isinstance(target[k], dict)] + [
            k for k in target if isinstance(target[k], list) and target[k] and isinstance(target[k][0], dict)
        ]
        if nested and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(nested)))
            target = target[key] if isinstance(target[key], dict) else target[key][0]
        op = draw(st.sampled_from(["set", "set", "set", "drop", "unknown"]))
        if op == "drop" and target:
            target.pop(draw(st.sampled_from(sorted(target))))
        elif op == "unknown":
            target[draw(st.sampled_from(["extra", "id", "seq", "patient_id"]))] = copy.deepcopy(
                draw(_tricky())
            )
        else:
            choices = sorted(target) or keys
            target[draw(st.sampled_from(choices))] = copy.deepcopy(
                draw(
                    st.one_of(_tricky(), st.floats(allow_nan=True), st.integers(-5, 300), st.text(max_size=5))
                )
            )
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[item], "item", 3, None]))
    return item


@pytest.mark.parametrize("spec", STREAMS, ids=lambda s: s.name)
def test_fast_path_is_compiled_and_taken_for_valid_examples(spec: Any) -> None:
    loader = ItemLoader(spec.item_schema)
    assert loader.compiled, f"{spec.item_schema.__name__} is not compiled"
    seed = SEEDS[spec.name]
    fast = loader.fast_load(seed)
    assert fast is not None
    assert _same(fast, spec.item_schema().load(seed))


def _single_edits(seed: dict[str, Any], keys: list[str]) -> list[Any]:
    """Every one-place edit: each TRICKY value in each known key (top level and
    inside the first nested object of each nested field), each key removed,
    each unknown key added."""
    out: list[Any] = []
    places: list[tuple[dict[str, Any], list[str]]] = [(seed, sorted(set(keys) | set(seed)))]
    for value in seed.values():
        if isinstance(value, dict):
            places.append((value, sorted(value)))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            places.append((value[0], [*sorted(value[0]), "pef_l_s", "usable", "flags"]))
    for target, target_keys in places:
        for key in [*target_keys, "extra"]:
            for value in [*TRICKY, "__drop__"]:
                original = target.get(key, "__absent__")
                if value == "__drop__":
                    target.pop(key, None)
                else:
                    target[key] = value
                out.append(copy.deepcopy(seed))
                if original == "__absent__":
                    target.pop(key, None)
                else:
                    target[key] = original
    return out


def _check(spec: Any, loader: ItemLoader, item: Any) -> bool:
    reference = _outcome(spec.item_schema().load, item)
    fast = loader.fast_load(item)
    if fast is not None:
        assert reference[0] == "ok", (item, reference)
        assert _same(fast, reference[1]), (item, fast, reference[1])
    got = _outcome(loader.load, item)
    assert got[0] == reference[0]
    assert _same(got[1], reference[1]), (item, got, reference)
    return fast is not None


@pytest.mark.parametrize("spec", STREAMS, ids=lambda s: s.name)
def test_every_single_edit_agrees_with_marshmallow(spec: Any) -> None:
    loader = ItemLoader(spec.item_schema)
    seed = copy.deepcopy(SEEDS[spec.name])
    items = _single_edits(seed, list(spec.item_schema().load_fields))
    fast = sum(_check(spec, loader, item) for item in items)
    # both outcomes are exercised: edits that stay valid and edits that fall back
    assert 0 < fast < len(items)


@pytest.mark.parametrize("spec", STREAMS, ids=lambda s: s.name)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_agree_with_marshmallow(spec: Any, data: st.DataObject) -> None:
    seed = SEEDS[spec.name]
    loader = ItemLoader(spec.item_schema)
    keys = list(spec.item_schema().load_fields)
    _check(spec, loader, data.draw(_edited(seed, keys)))


def test_cross_field_rule_falls_back_to_marshmallow_errors() -> None:
    spec = next(s for s in STREAMS if s.name == "spirometry")
    loader = ItemLoader(spec.item_schema)
    item = dict(SEEDS["spirometry"], fev1_l=3.5, fvc_l=3.0)
    assert loader.fast_load(item) is None
    with pytest.raises(ValidationError) as exc:
        loader.load(item)
    assert exc.value.normalized_messages() == {"fev1_l": ["FEV1 cannot exceed FVC."]}  # type: ignore[no-untyped-call]


def test_schemas_it_cannot_follow_are_not_compiled() -> None:
    class WithDict(Schema):
        extra = fields.Dict()

    class WithHook(Schema):
        n = fields.Integer()

        @validates_schema(pass_original=True)
        def _check(self, data: Any, original: Any, **_: Any) -> None:
            pass

    for cls in (WithDict, WithHook):
        loader = ItemLoader(cls)
        assert not loader.compiled
        assert loader.load({}) == cls().load({})
