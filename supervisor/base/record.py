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

from collections.abc import Callable, Mapping
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
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
    """A new record like `obj`, with `changes` (its __post_init__ runs again, as with dataclasses)."""
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
    post_init = getattr(cls, "__post_init__", None)
    setter = object.__setattr__

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > len(declared):
            raise TypeError(f"{cls.__name__}() takes {len(declared)} positional arguments but {len(args)} were given")
        for index, one in enumerate(declared):
            if index < len(args):
                if one.name in kwargs:
                    raise TypeError(f"{cls.__name__}() got multiple values for argument {one.name!r}")
                value = args[index]
            elif one.name in kwargs:
                value = kwargs.pop(one.name)
            elif one.default is not MISSING:
                value = one.default
            elif one.default_factory is not MISSING:
                value = _call(one.default_factory)
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {one.name!r}")
            setter(self, one.name, value)
        for name in kwargs:  # what is left names no field
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
        if post_init is not None:
            post_init(self)

    def values(self: object) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in names)

    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{cls.__qualname__}({shown})"

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    made = {FIELDS: tuple(declared), "__init__": __init__, "__repr__": __repr__, "__eq__": __eq__,
            "__match_args__": names, "__hash__": None}  # __hash__: as a dataclass with eq, unless frozen
    if frozen:
        def __setattr__(self: object, name: str, value: object) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: object, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        def __hash__(self: object) -> int:
            return hash(values(self))

        made.update(__setattr__=__setattr__, __delattr__=__delattr__, __hash__=__hash__)
    for name, value in made.items():
        setattr(cls, name, value)
    return cls


def _call(factory: object) -> object:
    assert callable(factory)
    return factory()


def record(cls: type | None = None, /, *, frozen: bool = False) -> Callable[[type], type] | type:
    """@record or @record(frozen=True), as @dataclass."""
    if cls is None:
        return lambda target: _build(target, frozen)
    return _build(cls, frozen)
