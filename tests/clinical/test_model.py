"""The model values that write their own ``__init__`` stay exact frozen dataclasses.

``Measurement``, ``Evidence``, ``ScoreInput``, ``Score`` and ``OfferedOption`` store their
fields with one ``__dict__`` update instead of the generated ``object.__setattr__`` per field
(a hot-path cost, service/clinical/model.py). These tests hold each hand-written
``__init__`` to the class's fields, so a field added to the class and forgotten in
``__init__`` fails here. ``Facts``, ``Assessment``, ``Scores`` and ``MissingItem`` get such
an ``__init__`` generated from their fields (``stored_at_once``); the same tests hold it to
the dataclass's parameters, default factories included.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from service.clinical.model import (
    FACTORY,
    Assessment,
    Evidence,
    Facts,
    Measurement,
    MissingItem,
    OfferedOption,
    Score,
    ScoreInput,
    Scores,
    stored_at_once,
)

HAND_WRITTEN_INIT: tuple[type[Any], ...] = (Measurement, Evidence, ScoreInput, Score, OfferedOption)
GENERATED_INIT: tuple[type[Any], ...] = (Facts, Assessment, Scores, MissingItem)


@pytest.mark.parametrize("cls", HAND_WRITTEN_INIT + GENERATED_INIT, ids=lambda c: c.__name__)
def test_init_takes_exactly_the_fields_in_order_with_their_defaults(cls: type[Any]) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for p, f in zip(parameters, fields, strict=True):
        if f.default_factory is not dataclasses.MISSING:
            expected: Any = FACTORY
        else:
            expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected, f.name
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, f.name


@pytest.mark.parametrize("cls", GENERATED_INIT, ids=lambda c: c.__name__)
def test_generated_init_calls_each_default_factory_when_left_out(cls: type[Any]) -> None:
    fields = dataclasses.fields(cls)
    required = {f.name: f"v-{f.name}" for f in fields if _required(f)}
    first, second = cls(**required), cls(**required)
    assert first == second
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(first, f.name) == f.default_factory(), f.name
            assert getattr(first, f.name) is not getattr(second, f.name), f.name
        elif f.default is not dataclasses.MISSING:
            assert getattr(first, f.name) == f.default, f.name


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def test_generated_init_refuses_what_it_does_not_support() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    with pytest.raises(TypeError):
        stored_at_once(Later)


@pytest.mark.parametrize("cls", HAND_WRITTEN_INIT + GENERATED_INIT, ids=lambda c: c.__name__)
def test_values_behave_as_frozen_dataclasses(cls: type[Any]) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    values = {name: f"v-{name}" for name in names}
    made = cls(**values)
    assert vars(made) == values  # every field stored, in field order
    assert list(vars(made)) == names
    assert made == cls(**values) and hash(made) == hash(cls(**values))
    assert repr(made).startswith(f"{cls.__name__}({names[0]}=")
    changed = dataclasses.replace(made, **{names[0]: "other"})
    assert getattr(changed, names[0]) == "other" and getattr(made, names[0]) == f"v-{names[0]}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, names[0], "x")


def test_positional_construction_matches_the_fields() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    m = Measurement(34.2, "umol/L", at, "Observation/b", "2.0 mg/dL", 34.21, 2.0, "mg/dL")
    assert dataclasses.astuple(m) == (
        34.2,
        "umol/L",
        at,
        "Observation/b",
        "2.0 mg/dL",
        34.21,
        2.0,
        "mg/dL",
    )
    assert Evidence("ecog", "1") == Evidence(fact="ecog", value="1", date=None, sources=())
    assert ScoreInput("MELD", "12").assumed is False
    assert Score("Fong", 2).inputs == ()
    assert OfferedOption("tace", False) == OfferedOption("tace", False, None, "")
