"""s6-rc source definitions (/etc/s6-overlay/s6-rc.d): what they say, and in what order to run it.

`load` reads the source directories into plain records (effects, bounded reads);
`plan` resolves them (pure): the `user` and `user2` bundles expanded to their atomic
services with every dependency, bundles flattened, cycles and missing names reported
with the names involved, and each service's dependencies among what will run.

s6-overlay's own names (base, fix-attrs, legacy-cont-init, legacy-services,
s6rc-oneshot-runner, s6rc-fdholder) are stages pyinit runs itself: a dependency on
one is satisfied by that stage (legacy-services: by services.d being started, which
only `user2` services can wait for).
"""

from __future__ import annotations

import os

from ..base.files import read_small_text
from ..base.terms import valid_name

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:  # mypy reads real dataclasses; the start path builds them without importing dataclasses
    from dataclasses import dataclass as record
    from dataclasses import field, replace
else:
    from ..base.record import field, record, replace

TYPES = ("longrun", "oneshot", "bundle")
BEFORE_USER = frozenset({"base", "fix-attrs", "legacy-cont-init", "s6rc-oneshot-runner", "s6rc-fdholder"})
AFTER_SERVICES = "legacy-services"
MAX_SCRIPT_BYTES = 64 * 1024


@record(frozen=True)
class Definition:
    """One s6-rc source definition, as read from its directory."""

    name: str
    type: str
    directory: str
    dependencies: tuple[str, ...] = ()
    contents: tuple[str, ...] = ()  # a bundle's
    up: str = ""  # a oneshot's command lines
    down: str = ""
    problems: tuple[str, ...] = ()
    producer_for: str = ""  # a longrun whose stdout goes to that logger
    consumer_for: str = ""  # a logger, reading that longrun's stdout


@record(frozen=True)
class Plan:
    """What to run: `first` in the user stage (before services.d), `second` after it (user2);
    each atomic service once, with its dependencies among those that run."""

    first: tuple[str, ...]
    second: tuple[str, ...]
    definitions: dict[str, Definition]
    needs: dict[str, tuple[str, ...]]
    problems: tuple[str, ...] = ()
    left_out: frozenset[str] = field(default_factory=frozenset)  # in a cycle, or missing what it needs


def _names_in(directory: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(name for name in os.listdir(directory) if not name.startswith(".")))
    except OSError:
        return ()


def _list_file(path: str) -> tuple[str, ...]:
    """v3's `dependencies` / `contents` files: one name per line, # comments."""
    text = read_small_text(path, MAX_SCRIPT_BYTES)
    if text is None:
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def read_definition(directory: str) -> Definition:
    name = os.path.basename(directory.rstrip("/"))
    problems: list[str] = []
    kind = (read_small_text(os.path.join(directory, "type")) or "").strip()
    if kind not in TYPES:
        problems.append(f"type is {kind!r}, not one of {', '.join(TYPES)}" if kind else "no type file")
    dependencies = _names_in(os.path.join(directory, "dependencies.d")) + _list_file(os.path.join(directory, "dependencies"))
    contents = _names_in(os.path.join(directory, "contents.d")) + _list_file(os.path.join(directory, "contents"))
    up = down = ""
    if kind == "oneshot":
        up = read_small_text(os.path.join(directory, "up"), MAX_SCRIPT_BYTES) or ""
        down = read_small_text(os.path.join(directory, "down"), MAX_SCRIPT_BYTES) or ""
        if not up:
            problems.append("a oneshot needs an up file")
    if kind == "longrun" and not os.path.exists(os.path.join(directory, "run")):
        problems.append("a longrun needs a run file")
    producer_for = (read_small_text(os.path.join(directory, "producer-for")) or "").strip()
    consumer_for = (read_small_text(os.path.join(directory, "consumer-for")) or "").strip()
    if producer_for:  # s6-rc: a producer starts after its consumer, so no line is written to nobody
        dependencies = (*dependencies, producer_for)
    return Definition(name, kind, directory, tuple(dict.fromkeys(dependencies)), tuple(dict.fromkeys(contents)),
                      up, down, tuple(problems), producer_for, consumer_for)


def load(source: str, bundle_dirs: list[str]) -> dict[str, Definition]:
    """Every definition under `source`, and the user/user2 bundles of `bundle_dirs` (s6-overlay's
    user-bundles.d, or S6_RUNTIME_BUNDLEDIR): a bundle there adds to one of the same name."""
    definitions: dict[str, Definition] = {}
    for name in _names_in(source):
        path = os.path.join(source, name)
        if os.path.isdir(path) and valid_name(name):
            definitions[name] = read_definition(path)
            if name in ("user", "user2") and not os.path.lexists(os.path.join(path, "type")):
                # s6-overlay's rc.init makes s6-rc.d/user (and user2) bundles by writing their type
                # files into /etc; here they are bundles without that write (a read-only /etc boots)
                definitions[name] = replace(definitions[name], type="bundle",
                                            problems=tuple(problem for problem in definitions[name].problems
                                                           if problem != "no type file"))
    for definition in list(definitions.values()):  # pipeline-name: a bundle of the whole pipeline
        name = (read_small_text(os.path.join(definition.directory, "pipeline-name")) or "").strip()
        if name and definition.consumer_for and valid_name(name) and name not in definitions:
            chain = [definition.name]
            while (producer := definitions.get(chain[-1])) and producer.consumer_for and \
                    producer.consumer_for not in chain:
                chain.append(producer.consumer_for)
            definitions[name] = Definition(name, "bundle", definition.directory, contents=tuple(reversed(chain)))
    for bundles in bundle_dirs:
        for name in ("user", "user2"):
            path = os.path.join(bundles, name)
            if not os.path.isdir(path):
                continue
            extra = _names_in(os.path.join(path, "contents.d")) + _list_file(os.path.join(path, "contents"))
            known = definitions.get(name)
            contents = (known.contents if known else ()) + extra
            definitions[name] = Definition(name, "bundle", path, contents=tuple(dict.fromkeys(contents)))
    return definitions


def plan(definitions: dict[str, Definition]) -> Plan:
    try:
        return _plan(definitions)
    except RecursionError:  # thousands of bundles or dependencies in one chain: refused, named
        return Plan((), (), definitions, {}, ("the s6-rc definitions nest too deep (bundles or dependencies); "
                                               "none is run",), frozenset(definitions))


def _plan(definitions: dict[str, Definition]) -> Plan:
    problems: list[str] = []
    for definition in definitions.values():
        problems += [f"{definition.name}: {problem}" for problem in definition.problems]

    def atoms(name: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        """A name as the atomic services it stands for (a bundle: its contents, recursively)."""
        definition = definitions.get(name)
        if definition is None or definition.type != "bundle":
            return (name,)
        if name in trail:
            problems.append(f"bundle cycle: {' -> '.join((*trail, name))}")
            return ()
        found: list[str] = []
        for member in definition.contents:
            found += atoms(member, (*trail, name))
        return tuple(dict.fromkeys(found))

    needs: dict[str, tuple[str, ...]] = {}
    missing: set[str] = set()

    def close(roots: tuple[str, ...]) -> list[str]:
        order: list[str] = []
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name in order or name in BEFORE_USER or name == AFTER_SERVICES:
                continue
            definition = definitions.get(name)
            if definition is None:
                missing.add(name)
                continue
            if definition.problems:
                continue
            direct: list[str] = []
            for dependency in definition.dependencies:
                direct += atoms(dependency, ())
            needs[name] = tuple(dict.fromkeys(direct))
            order.append(name)
            stack += needs[name]
        return order

    def bundle(name: str) -> tuple[str, ...]:
        return atoms(name, ()) if name in definitions else ()  # an image without it has nothing in it

    first = close(bundle("user"))
    second = [name for name in close(bundle("user2")) if name not in first]
    for name in sorted(missing):
        wanted_by = sorted(n for n, deps in needs.items() if name in deps)
        problems.append(f"{name}: no such service" + (f" (needed by {', '.join(wanted_by)})" if wanted_by else ""))
    left_out = _cycles_and_gaps(first + second, needs, definitions, missing, problems)
    for name in first:
        if AFTER_SERVICES in needs.get(name, ()) or AFTER_SERVICES in definitions[name].dependencies:
            problems.append(f"{name}: depends on legacy-services but is in the user bundle "
                            "(only user2 services start after services.d)")
            left_out.add(name)
    return Plan(tuple(n for n in _ordered(first, needs) if n not in left_out),
                tuple(n for n in _ordered(second, needs) if n not in left_out),
                definitions, needs, tuple(problems), frozenset(left_out))


def _cycles_and_gaps(names: list[str], needs: dict[str, tuple[str, ...]], definitions: dict[str, Definition],
                     missing: set[str], problems: list[str]) -> set[str]:
    """The services that cannot start: in a dependency cycle, or needing one that cannot."""
    left_out: set[str] = set()
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> bool:
        """False when `name` cannot start."""
        if state.get(name) == 2:
            return name not in left_out
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            problems.append(f"dependency cycle: {' -> '.join(cycle)}")
            left_out.update(cycle)
            return False
        state[name] = 1
        fine = True
        for dependency in needs.get(name, ()):
            if dependency in BEFORE_USER or dependency == AFTER_SERVICES:
                continue
            if dependency in missing or (dependency in definitions and definitions[dependency].problems):
                fine = False
            elif not visit(dependency, [*path, name]):
                fine = False
        state[name] = 2
        if not fine:
            left_out.add(name)
        return fine

    for name in names:
        visit(name, [])
    return left_out


def _ordered(names: list[str], needs: dict[str, tuple[str, ...]]) -> list[str]:
    """Dependencies before their dependents (a stable topological order, by name within a rank)."""
    placed: list[str] = []
    remaining = sorted(names)
    chosen = set(names)
    while remaining:
        ready = [n for n in remaining if all(d in placed or d not in chosen for d in needs.get(n, ()))]
        if not ready:  # a cycle: left out by the caller anyway
            placed += remaining
            break
        placed += ready
        remaining = [n for n in remaining if n not in ready]
    return placed
