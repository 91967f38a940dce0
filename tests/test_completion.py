"""bash completion for pysvstat and pysvc (completions/pys6.bash), run in real bash: the script
sourced, COMP_WORDS and COMP_CWORD set as bash sets them, the function the script registered
called, COMPREPLY read. Options are compared with each client's --help; service names come
from a real pyinit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, Pod, started

SCRIPT = REPO / "completions" / "pys6.bash"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="no bash")

CALL = r"""
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
spec=$(complete -p "${COMP_WORDS[0]##*/}") || exit 3
fn=${spec#*-F }; fn=${fn%% *}
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def clients(directory: Path) -> Path:
    """pysvstat and pysvc of this checkout in directory, as the image's PATH has them."""
    directory.mkdir(exist_ok=True)
    for name, module in (("pysvstat", "svstat"), ("pysvc", "svc")):
        path = directory / name
        path.write_text(f"#!{sys.executable}\nfrom supervisor.control.{module} import main\nmain()\n")
        path.chmod(0o755)
    return directory


def complete(*words: str, env: dict[str, str] | None = None) -> list[str]:
    """COMPREPLY for the command line `words` (the last one being completed; "" for a fresh word)."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
               "PYS6_RUNDIR": "/nonexistent-pys6-rundir", **(env or {})}
    result = subprocess.run([str(BASH), "--norc", "--noprofile", "-c", CALL, "bash", str(SCRIPT), *words],
                            capture_output=True, text=True, env=environ, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return [line for line in result.stdout.split("\n") if line]


def help_of(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", f"supervisor.control.{module}", "--help"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


OPTION = re.compile(r"^--?[A-Za-z0-9][A-Za-z0-9-]*(=[a-z]+)?$")


def documented_options(text: str, waits: bool) -> set[str]:
    """The options a --help names: every option in its usage lines, and the option column of its
    indented lines (options, "-x, --long" pairs and their ARGUMENT words, up to the description).
    A bundle (-uwNrpgest) is its letters; with waits, -wX stays whole (pysvc's -w takes a letter)."""
    words: list[str] = []
    lines = text.split("\n")
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("usage:") or (line.startswith(" ") and stripped.split(" ")[0] in ("pysvstat", "pysvc")):
            words += re.findall(r"(?<![\w-])--?[A-Za-z0-9][A-Za-z0-9=-]*", stripped.split(" (")[0])
        elif line.startswith("  ") and stripped.startswith("-"):
            for word in stripped.replace(",", " ").split():
                if OPTION.match(word):
                    words.append(word)
                elif not (word.isupper() or word.startswith("[")):
                    break
    found: set[str] = set()
    for word in words:
        if word.startswith("--") or len(word) == 2 or (waits and word.startswith("-w") and len(word) == 3):
            found.add(word)
        else:
            found.update(f"-{letter}" for letter in word[1:])
    return found


@pytest.mark.parametrize(("command", "module", "waits"), [("pysvstat", "svstat", False), ("pysvc", "svc", True)])
def test_the_options_completed_are_the_ones_the_help_names(command: str, module: str, waits: bool):
    offered = complete(command, "-")
    assert len(offered) == len(set(offered))
    documented = documented_options(help_of(module), waits)
    # Each client answers --help and --version; pysvstat's help does not list them.
    assert set(offered) - documented <= {"--help", "--version"}, "completed but not in --help"
    assert documented - set(offered) == set(), "in --help but not completed"
    assert complete(command, "--") == sorted((o for o in offered if o.startswith("--")), key=offered.index)


def test_the_parser_of_the_help_text_finds_each_kind_of_option():
    """The comparison above can fail: bundles, -x/--long pairs, ARGUMENT words and the usage."""
    text = ("usage: pysvstat [-ab | -o F] [--json] SERVICE...\n       pysvstat --log S\n\n"
            "  -c, --long N  does\n  --check=live liveness, not -d (after the option column)\n"
            "text naming -e elsewhere\n")
    assert documented_options(text, waits=False) == {"-a", "-b", "-o", "--json", "--log", "-c", "--long", "--check=live"}


def test_option_prefixes_fields_and_check_modes():
    assert complete("pysvstat", "--j") == ["--json"]
    assert complete("pysvstat", "--check") == ["--check", "--check=ready", "--check=live"]
    # "--check=li" as bash splits it (= is in COMP_WORDBREAKS)
    assert complete("pysvstat", "--check", "=", "li") == ["live"]
    assert complete("pysvstat", "--check", "=") == ["ready", "live"]
    assert complete("pysvstat", "-o", "updown") == ["updownsince", "updownfor"]
    assert complete("pysvstat", "-o", "up,pi") == ["up,pid"]
    fields = re.search(r"print these fields, space-separated: (.*?)\n  -u", help_of("svstat"), re.S)
    assert fields
    assert complete("pysvstat", "-o", "") == fields.group(1).split()
    assert complete("pysvstat", "--log", "x", "-n", "") == []  # a number of lines
    assert complete("pysvc", "-s", "U") == ["USR1", "USR2"]
    assert complete("pysvc", "-T", "") == []
    assert complete("pysvc", "-wu", "--") == ["--ssh-forced", "--help", "--version"]
    assert complete("pysvc", "--ssh-forced", "") == []


def test_no_pyinit_completes_no_name_at_once(tmp_path: Path):
    began = time.monotonic()
    assert complete("pysvstat", "", env={"PATH": f"{clients(tmp_path / 'bin')}:/usr/bin:/bin"}) == []
    assert time.monotonic() - began < 10


def test_service_names_come_from_the_running_pyinit(pod: Pod, tmp_path: Path):
    started(pod, "alpha", "web-1", "web-2")
    bin_dir = clients(tmp_path / "bin")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYS6_RUNDIR": str(pod.rundir)}
    assert complete("pysvstat", "", env=env) == ["alpha", "web-1", "web-2"]
    assert complete("pysvstat", "we", env=env) == ["web-1", "web-2"]
    assert complete("pysvstat", "--log", "a", env=env) == ["alpha"]
    assert complete("pysvstat", "-o", "up", "w", env=env) == ["web-1", "web-2"]
    assert complete("pysvc", "-r", "web-", env=env) == ["web-1", "web-2"]
    assert complete("pysvc", "-d", "-wD", "-T", "5000", "", env=env) == ["alpha", "web-1", "web-2"]
    # pysvc called by its path finds the pysvstat beside it, not one on PATH
    elsewhere = {"PATH": "/usr/bin:/bin", "PYS6_RUNDIR": str(pod.rundir)}
    assert complete(str(bin_dir / "pysvc"), "al", env=elsewhere) == ["alpha"]
    assert complete("pysvc", "al", env=elsewhere) == []  # no pysvstat on PATH: no names, no error
