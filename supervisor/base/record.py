"""Records for pyinit's start path: the part of `dataclasses` it uses, without its imports.

`import dataclasses` costs pyinit's start path some 8 ms (inspect, ast, dis, tokenize and re
come with it), more than everything else before its first cont-init script. The classes that
path builds (the settings, the s6-rc plan, the layout, the head start's records) are declared
here instead, the same way, and type-checked as what they are:

    if TYPE_CHECKING:
        from dataclasses import dataclass as record, field, fields, replace
    else:
        from ..base.record import field, fields, record, replace

so mypy reads real dataclasses, and at run time `record` builds the same class: `__init__`
with the fields in order (positional or by keyword, defaults and default factories,
`__post_init__`), `__repr__`, `__eq__`, and for `frozen=True` assignment refused and
`__hash__`. What it does not do (ClassVar, InitVar, inheritance between records, keyword-only
or init=False fields, ordering, slots) it refuses at class creation. `fields` and `replace` are
dataclasses' for these records; `dataclasses.replace` itself does not take them.
"""

from __future__ import annotations

from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TypeVar

    Record = TypeVar("Record")


class FrozenInstanceError(AttributeError):
    """An assignment to a frozen record's field (dataclasses' FrozenInstanceError, by name)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: object = _Missing()
_EMPTY: Mapping[str, object] = MappingProxyType({})


class Field:
    """One field: its name, its default or default factory, its metadata."""

    __slots__ = ("default", "default_factory", "metadata", "name")

    def __init__(self, default: object = MISSING, default_factory: object = MISSING,
                 metadata: Mapping[str, object] | None = None) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.metadata: Mapping[str, object] = _EMPTY if metadata is None else MappingProxyType(dict(metadata))

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, default_factory={self.default_factory!r})"


def field(*, default: object = MISSING, default_factory: object = MISSING,
          metadata: Mapping[str, object] | None = None) -> Field:
    return Field(default, default_factory, metadata)


FIELDS = "__record_fields__"


def fields(thing: object) -> tuple[Field, ...]:
    """A record's fields, in order (a record class or one of its instances)."""
    found = getattr(thing, FIELDS, None)
    if found is None:
        raise TypeError("must be called with a record type or instance")
    return tuple(found)


def replace(obj: Record, /, **changes: object) -> Record:
    """A new record like `obj`, with `changes` (its __post_init__ runs again, as with dataclasses);
    a real dataclass is handed to dataclasses.replace."""
    if getattr(obj, FIELDS, None) is None:
        import dataclasses

        replaced: Record = dataclasses.replace(obj, **changes)  # type: ignore[type-var]
        return replaced
    for one in fields(obj):
        if one.name not in changes:
            changes[one.name] = getattr(obj, one.name)
    made: Record = type(obj)(**changes)
    return made


def _refused(annotation: object) -> bool:
    text = str(annotation)
    return any(text.startswith(prefix) for prefix in ("ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar"))


def _build(cls: type, frozen: bool) -> type:
    if any(getattr(base, FIELDS, None) is not None for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a record cannot inherit from a record")
    declared: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _refused(annotation):
            raise TypeError(f"{cls.__name__}.{name}: ClassVar and InitVar fields are not supported")
        value = cls.__dict__.get(name, MISSING)
        one = value if isinstance(value, Field) else Field(default=value)
        if name == "self" or name.startswith("_rec_") or name.startswith("__"):
            raise TypeError(f"{cls.__name__}.{name}: a field name a record cannot take")
        one.name = name
        if isinstance(value, Field):
            if one.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, one.default)
        if declared and one.default is MISSING and one.default_factory is MISSING and (
                declared[-1].default is not MISSING or declared[-1].default_factory is not MISSING):
            raise TypeError(f"non-default argument {name!r} follows default argument")
        declared.append(one)
    names = tuple(one.name for one in declared)

    def __repr__(self: object) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in names) + ")"

    made = _first_use(cls, declared, frozen)
    made.update({FIELDS: tuple(declared), "__match_args__": names, "__repr__": __repr__})
    if frozen:
        made.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
    for name, value in made.items():
        setattr(cls, name, value)
    return cls


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _first_use(cls: type, declared: list[Field], frozen: bool) -> dict[str, object]:
    """Stand-ins for __init__, __eq__ and __hash__ that write out the real ones at the class's
    first use, put them in their place and hand over: writing them costs an exec (some 60 µs a
    class), and the start path declares some forty records it never makes or compares."""
    def written() -> None:
        for name, value in _methods(cls, declared, frozen, hasattr(cls, "__post_init__")).items():
            setattr(cls, name, value)  # twice at worst, from two threads: the same methods

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        written()
        cls.__dict__["__init__"](self, *args, **kwargs)

    def __eq__(self: object, other: object) -> bool:
        written()
        same: bool = cls.__dict__["__eq__"](self, other)
        return same

    def __hash__(self: object) -> int:
        written()
        hashed: int = cls.__dict__["__hash__"](self)
        return hashed

    # __hash__ None unless frozen: as a dataclass with eq and not frozen
    return {"__init__": __init__, "__eq__": __eq__, "__hash__": __hash__ if frozen else None}


def _methods(cls: type, declared: list[Field], frozen: bool, post_init: bool) -> dict[str, object]:
    """__init__, __eq__ (and __hash__), written out as dataclasses writes them: a record is made
    as fast as a dataclass (its replace, too)."""
    scope: dict[str, object] = {"_rec_missing": MISSING, "_rec_setter": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    for index, one in enumerate(declared):
        name = one.name
        if one.default is not MISSING:
            scope[f"_rec_default_{index}"] = one.default
            params.append(f"{name}=_rec_default_{index}")
        elif one.default_factory is not MISSING:
            scope[f"_rec_factory_{index}"] = one.default_factory
            params.append(f"{name}=_rec_missing")
            body.append(f"  if {name} is _rec_missing: {name} = _rec_factory_{index}()")
        else:
            params.append(name)
        body.append(f"  _rec_setter(self, {name!r}, {name})" if frozen else f"  self.{name} = {name}")
    if post_init:
        body.append("  self.__post_init__()")
    values = "(" + "".join(f"self.{one.name}," for one in declared) + ")"
    others = "(" + "".join(f"other.{one.name}," for one in declared) + ")"
    source = [
        f"def __init__(self, {', '.join(params)}):" if params else "def __init__(self):",
        *(body or ["  pass"]),
        "def __eq__(self, other):",
        "  if other.__class__ is not self.__class__: return NotImplemented",
        f"  return {values} == {others}",
    ]
    if frozen:
        source += ["def __hash__(self):", f"  return hash({values})"]
    exec("\n".join(source), scope)  # noqa: S102 (the source is the field names, as dataclasses does)
    made = {"__init__": scope["__init__"], "__eq__": scope["__eq__"]}
    if frozen:
        made["__hash__"] = scope["__hash__"]
    for name, method in made.items():
        method.__qualname__ = f"{cls.__qualname__}.{name}"  # type: ignore[attr-defined]
    return made


def record(cls: type | None = None, /, *, frozen: bool = False) -> Callable[[type], type] | type:
    """@record or @record(frozen=True), as @dataclass."""
    if cls is None:
        return lambda target: _build(target, frozen)
    return _build(cls, frozen)
