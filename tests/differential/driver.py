"""The differential suite's driver: boots one image tree under real s6-overlay v3.2.3.2 and
under pyinit (`pys6`: s6-overlay's files kept; `pys6-bare`: none, after
`pyinit --install-s6-commands`), as PID 1 of fresh namespaces through the rig's boot.sh
(rig/), and turns what each boot left into facts that can be compared.

A boot's facts come from instrumenting a copy of the tree before it boots: every script
an init runs (cont-init.d, cont-finish.d, services.d's run and finish, s6-rc's up, down,
run and finish, the scripts an up names, the CMD) first calls `fact` (beside this file),
which appends one JSON line: what that process was given as it was exec'd. Beside them: the
files the boot wrote into the image (the overlay's upper layer, but /run, /dev, /proc,
/tmp), the container's exit code, and how it ended.

Order. A script the init runs only once another has ended (cont-init scripts one by one,
a longrun after the oneshot it depends on) stamps at least `fact.HOLD` (0.3 s) after it,
since `fact --hold` waits that long before the script goes on; things the init starts
side by side stamp within a few milliseconds. So a pair of labels is compared as "before"
(later by ORDER_SLACK or more, and, after a held script, started once it had ended: `fact`
records when the hold ended too), "together" (within TOGETHER) or, in between, not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RIG = HERE / "rig"
TREES = HERE / "trees"
CHECKOUT = HERE.parent.parent
FACT = HERE / "fact"
INITS = ("s6-overlay", "pys6", "pys6-bare")

ORDER_SLACK = 0.2  # fact.HOLD is 0.3: a causal order is at least that far apart
TOGETHER = 0.1
QUIET = 1.5  # seconds with no new fact: the boot has settled
BOOT_BOUND = 40.0  # seconds from exec to settled (or PID 1 gone) before SIGTERM regardless
STOP_BOUND = 30.0  # seconds from SIGTERM to PID 1 gone before SIGKILL
MAX_FACTS = 2000  # a crash loop would record for ever

# Keys per fact that are compared; "stamp" only through the order.
FACT_KEYS = ("argv", "cwd", "uid", "gid", "groups", "umask", "sig_ignored", "sig_blocked", "fds",
             "group_leader", "session_leader")
SKIP_TOP = {"run", "dev", "proc", "tmp", "sys", ".diff"}
SHELLS = {"sh", "bash", "dash", "ash"}


def rig_root() -> Path:
    """The Debian root the trees are laid over (prepare-root.sh made it)."""
    for candidate in (os.environ.get("PYS6_RIG_ROOT"), "/var/cache/pys6-rig/root", "/var/tmp/s6o-root"):
        if candidate and Path(candidate, "opt/pys6/bin/pyinit").exists():
            return Path(candidate)
    return Path(os.environ.get("PYS6_RIG_ROOT") or "/var/cache/pys6-rig/root")


def s6o_prefix() -> Path:
    return Path(os.environ.get("S6O_PREFIX", "/opt/s6-overlay-real"))


def rig_problem() -> str | None:
    """Why the rig cannot boot here, or None."""
    if os.geteuid() != 0:
        return "the differential suite boots images as PID 1 of new namespaces: it needs root"
    if not (s6o_prefix() / "rootfs-overlay" / "init").exists():
        return f"no real s6-overlay in {s6o_prefix()} (tests/differential/rig/install.sh; .ci/run does it)"
    root = rig_root()
    if not (root / "opt/pys6/bin/pyinit").exists() or not (root / "usr/bin/python3").exists():
        return f"no rig root at {root} (tests/differential/rig/prepare-root.sh ROOT .; .ci/run makes it)"
    if not site_packages(root):
        return f"no supervisor package in {root}/opt/pys6 to lay this checkout's over"
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return None


def site_packages(root: Path) -> Path | None:
    found = sorted(root.glob("opt/pys6/lib/python3*/site-packages/supervisor"))
    return found[-1] if found else None


# --- the tree, copied and instrumented ---------------------------------------------------


@dataclasses.dataclass
class Case:
    """One boot's input: a tree and what the case adds to it."""

    name: str
    tree: Path
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # docker run -e
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # rootfs path: text (executable if it starts #!)
    dirs: Sequence[str] = ()  # rootfs paths made as directories (a volume's mount point)
    cmd: Sequence[str] | None = None  # replaces the tree's cmd
    # the container stops by itself (CMD exits, halt, stage 2 fails): no SIGTERM unless it
    # has not within BOOT_BOUND; else SIGTERM once the boot is quiet
    ends_by_itself: bool = False


TREE_FILES = ("env", "cmd", "user", "read-only", "run-opts")


def copy_tree(case: Case, dest: Path) -> Path:
    """The tree in the rig's TREE format under dest (rootfs/ and the optional files), with
    the case's files and the rig's stand-ins added; returns dest."""
    rootfs = dest / "rootfs"
    dest.mkdir(parents=True, exist_ok=True)
    if (case.tree / "rootfs").is_dir():
        subprocess.run(["cp", "-a", str(case.tree / "rootfs"), str(rootfs)], check=True)
        for name in TREE_FILES:
            if (case.tree / name).exists():
                shutil.copy2(case.tree / name, dest / name)
    else:
        # tests/compat's shape: the tree is the image's files, its env and cmd beside them
        rootfs.mkdir(parents=True)
        for entry in case.tree.iterdir():
            if entry.name in TREE_FILES:
                shutil.copy2(entry, dest / entry.name)
            else:
                subprocess.run(["cp", "-a", str(entry), str(rootfs / entry.name)], check=True)
    bindir = rootfs / "usr/local/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for standin in sorted((RIG / "standins").iterdir()):
        if not (bindir / standin.name).exists():
            shutil.copy2(standin, bindir / standin.name)
    for relpath in case.dirs:
        (rootfs / relpath).mkdir(parents=True, exist_ok=True)
    for relpath, content in case.files.items():
        target = rootfs / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o755 if content.startswith("#!") else 0o644)
    if case.cmd is not None:
        (dest / "cmd").write_text("".join(word + "\n" for word in case.cmd))
    return dest


def insert_after_shebang(path: Path, call: str) -> bool:
    """Puts `call` (a command line) right after the script's interpreter line, so the shebang's
    effect (with-contenv) is in place when it runs: as a line of a shell script, in a
    `foreground { }` of an execline one; False when the language is not known."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not data.startswith(b"#!"):
        return False
    first, sep, rest = data.partition(b"\n")
    words = first[2:].decode(errors="replace").split()
    if not words:
        return False
    interp = os.path.basename(words[0])
    if interp == "with-contenv" and len(words) > 1:
        interp = os.path.basename(words[1])
    if interp in SHELLS:
        line = call + "\n"
    elif interp == "execlineb":
        line = "foreground { " + call + " }\n"
    else:
        return False
    mode = path.stat().st_mode
    path.write_bytes(first + sep + line.encode() + rest)
    path.chmod(stat.S_IMODE(mode))
    return True


def _instrument_script(path: Path, label: str, hold: bool) -> bool:
    """The recorder's call after the interpreter line (insert_after_shebang)."""
    return insert_after_shebang(path, "/.diff/fact " + ("--hold " if hold else "") + label)


def _instrument_command_line(path: Path, label: str) -> str | None:
    """A oneshot's up or down (a command line execlineb reads, or pyinit as one plain line
    where there is no execline): the recorder goes first on its first line and execs the
    rest, so it works either way. Returns the program it runs when that is an absolute path."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines[i] = f"/.diff/fact --hold --exec {label} {line.lstrip()}"
            path.write_text("".join(lines))
            first = stripped.split()[0]
            return first if first.startswith("/") else None
    return None


def instrument(tree: Path) -> tuple[list[str], list[str]]:
    """Instruments tree (copy_tree's) in place: (labels, scripts left as they were)."""
    rootfs = tree / "rootfs"
    labels: list[str] = []
    skipped: list[str] = []

    def script(path: Path, label: str, hold: bool) -> None:
        if path.is_file() and not path.is_symlink():
            (labels if _instrument_script(path, label, hold) else skipped).append(label)

    etc = rootfs / "etc"
    for stage, kind in (("cont-init.d", "cont-init"), ("cont-finish.d", "cont-finish")):
        for entry in sorted((etc / stage).glob("*")):
            script(entry, f"{kind}:{entry.name}", True)
    for service in sorted((etc / "services.d").glob("*")):
        script(service / "run", f"svc:{service.name}:run", False)
        script(service / "finish", f"svc:{service.name}:finish", True)
        script(service / "log" / "run", f"svc:{service.name}:log:run", False)
        script(service / "log" / "finish", f"svc:{service.name}:log:finish", True)
    named: list[tuple[str, str]] = []
    for service in sorted((etc / "s6-overlay" / "s6-rc.d").glob("*")):
        for part in ("up", "down"):
            if (service / part).is_file():
                program = _instrument_command_line(service / part, f"rc:{service.name}:{part}")
                labels.append(f"rc:{service.name}:{part}")
                if program:
                    named.append((program, f"rc:{service.name}:{part}"))
        script(service / "run", f"rc:{service.name}:run", False)
        script(service / "finish", f"rc:{service.name}:finish", True)
    for program, _by in named:
        target = rootfs / program.lstrip("/")
        if target.is_file() and not target.is_symlink() and target.read_bytes().find(b"/.diff/fact") < 0:
            script(target, f"script:{program}", False)
    cmdfile = tree / "cmd"
    if cmdfile.exists():
        words = [w for w in cmdfile.read_text().splitlines()]
        if words:
            call = ["/.diff/fact", "--hold", "--exec", "main"]
            words = words[:1] + call + words[1:] if os.path.basename(words[0]) == "with-contenv" else call + words
            cmdfile.write_text("".join(w + "\n" for w in words))
            labels.append("main")
    return labels, skipped


# --- one boot -----------------------------------------------------------------------------


@dataclasses.dataclass
class Boot:
    init: str
    facts: list[dict[str, Any]]
    files: dict[str, str]
    exit: int | None
    ended: str  # "by itself", "after SIGTERM", "SIGKILL after SIGTERM"
    console: str
    seconds: float


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def boot(tree: Path, init: str, out: Path, extra_env: Mapping[str, str], expected: Iterable[str] = (),
         ends_by_itself: bool = False) -> Boot:
    """Boots the instrumented tree under init; out is this boot's own directory. Waits until
    the expected labels all recorded and no fact came for QUIET seconds (or PID 1 exited;
    with ends_by_itself, only that), bounded by BOOT_BOUND, then sends PID 1 SIGTERM (docker
    stop) and waits STOP_BOUND, then SIGKILL. Every process of the boot dies with the
    namespace; every mount with it."""
    assert init in INITS
    root = rig_root()
    out.mkdir(parents=True)
    for name in ("upper", "work", "merged", "diff"):
        (out / name).mkdir()
    diff = out / "diff"
    shutil.copy2(FACT, diff / "fact")
    (diff / "fact").chmod(0o755)
    diff.chmod(0o1777)  # writable for a non-root USER, with a read-only root too
    lower = [str(tree / "rootfs")]
    if init != "pys6-bare":
        lower += [str(s6o_prefix() / "rootfs-overlay"), str(s6o_prefix() / "symlinks-overlay")]
    lower.append(str(root))
    packages = site_packages(root)
    assert packages is not None
    inside = packages.relative_to(root)
    binds = [f"{diff}:/.diff", f"{CHECKOUT / 'supervisor'}:/{inside}"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYS6_INIT": "/opt/pys6/bin/pyinit",
        "BOOT_ENV": " ".join(f"{k}={v}" for k, v in extra_env.items()),
        "BOOT_BIND": " ".join(binds),
        "BOOT_BUILT": str(out / "built"),
    }
    facts = diff / "facts.jsonl"
    expected = set(expected)
    console = out / "console"
    started = time.monotonic()
    with open(console, "wb") as sink:
        ush = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--uts", "--ipc", "--net",
             "--mount-proc", "--kill-child", str(RIG / "boot.sh"), "--inside", str(out / "merged"), ":".join(lower),
             str(out / "upper"), str(out / "work"), init, str(tree), str(out / "t0")],
            env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
    ended = "by itself"
    try:
        pid1 = None
        deadline = started + 10
        while pid1 is None and ush.poll() is None and time.monotonic() < deadline:
            kids = _children(ush.pid)
            pid1 = kids[0] if kids else None
            if pid1 is None:
                time.sleep(0.02)
        # settled: the expected labels are there and nothing new came for QUIET seconds
        # (the quiet is counted from the first fact: pyinit's start-up under load is slower)
        count, last_change = 0, time.monotonic()
        deadline = started + BOOT_BOUND
        while ush.poll() is None and time.monotonic() < deadline:
            now_count = _count_lines(facts)
            if now_count != count:
                count, last_change = now_count, time.monotonic()
                if count >= MAX_FACTS:
                    break
            elif (not ends_by_itself and count and time.monotonic() - last_change >= QUIET
                  and expected <= _labels(facts)):
                break
            time.sleep(0.05)
        if ush.poll() is None:
            ended = "after SIGTERM"
            if pid1 is not None:
                os.kill(pid1, signal.SIGTERM)
            try:
                ush.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                ended = f"SIGKILL {STOP_BOUND:.0f} s after SIGTERM"
                os.killpg(ush.pid, signal.SIGKILL)  # unshare --kill-child takes the namespace with it
                ush.wait(30)
    finally:
        if ush.poll() is None:
            os.killpg(ush.pid, signal.SIGKILL)
            ush.wait(30)
    seconds = time.monotonic() - started
    built = set()
    if (out / "built").exists():
        built = {line[2:] for line in (out / "built").read_text().splitlines() if line.startswith("./")}
    return Boot(init=init, facts=read_facts(facts, str(out)), files=written_files(out / "upper", built, lower), exit=ush.returncode,
                ended=ended, console=console.read_text(errors="replace"), seconds=seconds)


def _labels(facts: Path) -> set[str]:
    return {f["label"] for f in read_facts(facts)}


def read_facts(path: Path, out: str | None = None) -> list[dict[str, Any]]:
    """The facts recorded; out: the boot's directory, which its console's path names (a
    descriptor the rig gave PID 1), written BOOT, the same for every boot."""
    found = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    if out:
        text = text.replace(json.dumps(out)[1:-1], "BOOT")
    ends: dict[tuple[str, float], float] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written as we read
        if "ended" in entry:  # a held fact's second line: when its script went on
            ends[(entry["label"], entry["of"])] = entry["ended"]
        else:
            found.append(entry)
    for fact in found:
        if (fact.get("label"), fact.get("stamp")) in ends:
            fact["ended"] = ends[(fact["label"], fact["stamp"])]
    return found


# --- normalizing ---------------------------------------------------------------------------

# what legitimately differs per run: s6-rc's live directory's random name, log stamps
_PER_RUN = [
    (re.compile(r"s6-rc:s6-rc-init:[A-Za-z0-9]+"), "s6-rc:s6-rc-init:*"),
    (re.compile(r"@4000[0-9a-f]{20}"), "@TAI64N"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?"), "TIME"),
]


def normal(text: str) -> str:
    for pattern, replacement in _PER_RUN:
        text = pattern.sub(replacement, text)
    return text


def written_files(upper: Path, built: set[str], lower: Sequence[str] = ()) -> dict[str, str]:
    """What the boot wrote into the image: path -> kind, mode, owner and content (a
    whiteout is a removal). /run, /dev, /proc, /tmp, /sys are not the image's; the links and
    directories pys6-bare's build step made are not the boot's (what the boot put in their place is); a directory the lower layers have,
    with the same owner and mode, is only the overlay's copy-up of a parent."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in SKIP_TOP]
            filenames = [f for f in filenames if f not in SKIP_TOP]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            # The build step (--install-s6-commands) makes only links and directories: a built path
            # that is now anything else (a script the boot wrote over pyinit's link, a removal) is the boot's.
            if rel in built and (stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                continue
            owner = f"{st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o}"
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                value = "removed"
            elif stat.S_ISLNK(st.st_mode):
                value = "symlink -> " + normal(os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                below = next((os.lstat(p) for p in (os.path.join(layer, rel) for layer in lower)
                              if os.path.lexists(p)), None)
                if below is not None and stat.S_ISDIR(below.st_mode) and (below.st_uid, below.st_gid, below.st_mode) \
                        == (st.st_uid, st.st_gid, st.st_mode):
                    continue
                value = "dir " + owner
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    data = f.read(65536)
                content = normal(data.decode("utf-8", "replace"))
                value = f"file {owner} " + (repr(content) if len(content) <= 200
                                            else "sha256:" + hashlib.sha256(content.encode()).hexdigest()[:16])
            else:
                value = f"special {owner}"
            found["/" + normal(rel)] = value
    return found


# What real s6-overlay v3.2.3.2 writes into the image's /etc (its rc.init makes the user
# bundles' type files the 3.2.3.2 tarball forgot; the rig's README): its own defect, not a
# target (on a read-only root it hangs there), so not a difference.
S6O_OWN_WRITES = re.compile(r"^/etc/s6-overlay(/s6-rc\.d(/user2?(/type|/contents\.d)?)?)?$")


def _normal_fact(fact: dict[str, Any]) -> dict[str, Any]:
    argv = fact.get("argv")
    if fact["label"].split("#")[0].endswith(":finish") and isinstance(argv, list):
        # s6's finish gets (exit code, signal, service name, process group): the last is a pid
        # (an s6-rc pipeline's finish is s6-rc-compile's ./finish.user)
        i = next((n for n, a in enumerate(argv) if a.endswith(("finish", "finish.user"))), None)
        if i is not None and len(argv) > i + 4 and argv[i + 4].isdigit() and argv[i + 4] != "0":
            fact = {**fact, "argv": argv[:i + 4] + ["PGID"] + argv[i + 5:]}
    return fact


def numbered(facts: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Facts by label, in stamp order; a label's second run is label#2, and so on."""
    seen: dict[str, int] = {}
    out: dict[str, Mapping[str, Any]] = {}
    for fact in sorted(facts, key=lambda f: f["stamp"]):
        fact = _normal_fact(fact)
        n = seen[fact["label"]] = seen.get(fact["label"], 0) + 1
        out[fact["label"] if n == 1 else f"{fact['label']}#{n}"] = fact
    return out


# --- comparing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Difference:
    label: str  # a process's label, "order", "files", "exit" or "end"
    key: str
    reference: str  # under s6-overlay
    other: str  # under pyinit

    def __str__(self) -> str:
        return f"  {self.label}: {self.key}: s6-overlay {self.reference} | pyinit {self.other}"


def _relation(x: Mapping[str, Any], y: Mapping[str, Any]) -> str | None:
    """x before y, after it, together with it, or None when the stamps cannot tell. Apart means
    apart by ORDER_SLACK and, where the first was held, started once it had ended: a process
    the init started beside a held one, only late (a loaded machine), is not after it."""
    gap = y["stamp"] - x["stamp"]
    if abs(gap) < TOGETHER:
        return "together with"
    first, second, relation = (x, y, "before") if gap > 0 else (y, x, "after")
    if abs(gap) < ORDER_SLACK or second["stamp"] < first.get("ended", first["stamp"]) - TOGETHER:
        return None
    return relation


def compare(reference: Boot, other: Boot, ignore_env: Iterable[str] = ()) -> list[Difference]:
    """Every difference between the two boots' facts; ignore_env: variables the test gave
    pyinit alone (its own switches), not the image."""
    ignore = set(ignore_env)
    diffs: list[Difference] = []
    ref, oth = numbered(reference.facts), numbered(other.facts)
    for label in sorted(set(ref) | set(oth)):
        if label not in oth:
            diffs.append(Difference(label, "ran", "yes", "no"))
            continue
        if label not in ref:
            diffs.append(Difference(label, "ran", "no", "yes"))
            continue
        a, b = ref[label], oth[label]
        if a.get("orphaned") or b.get("orphaned"):
            continue  # the process was gone before its facts could be read
        for key in FACT_KEYS:
            va, vb = normal(json.dumps(a.get(key))), normal(json.dumps(b.get(key)))
            if va != vb:
                diffs.append(Difference(label, key, va, vb))
        ea, eb = a.get("env", {}), b.get("env", {})
        for name in sorted((set(ea) | set(eb)) - ignore):
            va = "unset" if name not in ea else repr(normal(str(ea[name])))
            vb = "unset" if name not in eb else repr(normal(str(eb[name])))
            if va != vb:
                diffs.append(Difference(label, "env " + name, va, vb))
    common = sorted(set(ref) & set(oth), key=lambda label: ref[label]["stamp"])
    for i, x in enumerate(common):
        for y in common[i + 1:]:
            ra = _relation(ref[x], ref[y])
            rb = _relation(oth[x], oth[y])
            if "together with" in (ra, rb) and ra != rb:
                first = x if "before" in (ra, rb) else y  # the one that came first where they were apart
                if not (ref[first].get("held") and oth[first].get("held")):
                    continue  # it goes on running (a longrun): only latency tells "apart" from "together"
            if ra is not None and rb is not None and ra != rb:
                diffs.append(Difference("order", f"{x} / {y}", f"{x} {ra} {y}", f"{x} {rb} {y}"))
    for path in sorted(set(reference.files) | set(other.files)):
        if S6O_OWN_WRITES.match(path) and path not in other.files:
            continue
        va, vb = reference.files.get(path, "absent"), other.files.get(path, "absent")
        if va != vb:
            diffs.append(Difference("files", path, va, vb))
    if reference.exit != other.exit:
        diffs.append(Difference("exit", "code", str(reference.exit), str(other.exit)))
    if reference.ended != other.ended:
        diffs.append(Difference("end", "how", reference.ended, other.ended))
    return diffs


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def describe(diffs: Sequence[Difference]) -> str:
    """One line per difference; the same key with the same two values in several processes
    is one line naming them all."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    lines: list[str] = []
    for d in diffs:
        if d.label in ("order", "files", "exit", "end"):
            lines.append(str(d))
        else:
            groups.setdefault((d.key, d.reference, d.other), []).append(d.label)
    for (key, reference, other), labels in groups.items():
        lines.append(f"  {key}: s6-overlay {reference} | pyinit {other}  [{', '.join(labels)}]")
    return "\n".join(sorted(lines))
