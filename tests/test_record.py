"""base/record: the start path's dataclasses, built without importing dataclasses, behave as
dataclasses do for what pyinit uses (checked against dataclasses itself)."""

from __future__ import annotations

import dataclasses

import pytest

from supervisor.base import record as rec
from supervisor.core.settings import KNOBS, Settings
from supervisor.s6.layout import Layout


def _pair(frozen: bool) -> tuple[type, type]:
    def body() -> dict[str, object]:
        return {"__annotations__": {"a": "int", "b": "str", "c": "list[int]", "d": "dict[str, int]"},
                "b": "x", "c": rec.field(default_factory=list), "d": rec.field(default=None, metadata={"k": 1})}

    mine = rec.record(type("Point", (), body()), frozen=frozen)
    theirs_body = body()
    theirs_body["c"] = dataclasses.field(default_factory=list)
    theirs_body["d"] = dataclasses.field(default=None, metadata={"k": 1})
    theirs = dataclasses.dataclass(type("Point", (), theirs_body), frozen=frozen)
    return mine, theirs


@pytest.mark.parametrize("frozen", [False, True])
def test_a_record_is_built_as_a_dataclass_is(frozen: bool):
    mine, theirs = _pair(frozen)
    for args, kwargs in (((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [3]}), ((4,), {"d": {"z": 1}})):
        made, expected = mine(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(made) == repr(expected)
        assert [getattr(made, n) for n in "abcd"] == [getattr(expected, n) for n in "abcd"]
        assert made == mine(*args, **kwargs) and made != expected  # another class is never equal
    assert mine(1).c is not mine(1).c  # a factory per instance
    assert [f.name for f in rec.fields(mine)] == [f.name for f in dataclasses.fields(theirs)]
    assert rec.fields(mine)[3].metadata["k"] == 1
    assert rec.replace(mine(1, c=[5]), a=7) == mine(7, c=[5])
    for bad_args, bad_kwargs in (((), {}), ((1, 2, 3, 4, 5), {}), ((1,), {"a": 1}), ((1,), {"e": 1})):
        with pytest.raises(TypeError):
            theirs(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            mine(*bad_args, **bad_kwargs)


def test_frozen_refuses_assignment_and_hashes_and_the_other_is_unhashable():
    mine, _ = _pair(True)
    point = mine(1)
    with pytest.raises(AttributeError):
        point.a = 2
    with pytest.raises(AttributeError):
        del point.a
    mine_c, _ = _pair(False)
    with pytest.raises(TypeError):
        hash(mine_c(1))
    plain = rec.record(type("P", (), {"__annotations__": {"a": "int", "b": "tuple[int, ...]"}, "b": ()}), frozen=True)
    assert hash(plain(1)) == hash(plain(1))


def test_what_it_does_not_do_is_refused_when_the_class_is_made():
    with pytest.raises(TypeError):
        rec.record(type("C", (), {"__annotations__": {"a": "ClassVar[int]"}}))
    with pytest.raises(TypeError):  # a field without a default after one with
        rec.record(type("C", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
    base = rec.record(type("B", (), {"__annotations__": {"a": "int"}}))
    with pytest.raises(TypeError):
        rec.record(type("C", (base,), {"__annotations__": {"b": "int"}}))


def test_the_start_path_records_are_what_they_were():
    settings = Settings()
    assert rec.replace(settings, verbosity=3).verbosity == 3 and settings.verbosity == 2
    assert settings == Settings()
    assert {knob.field for knob in KNOBS} >= {"verbosity", "log_prefix", "s6_run"} and "etc" not in {k.field for k in KNOBS}
    layout = Layout("/run/s6/container_environment", [], [])
    assert layout.legacy_services == "/run/s6/legacy-services"  # __post_init__ ran
    assert layout.problems == [] and layout.problems is not Layout("/x/e", [], []).problems
