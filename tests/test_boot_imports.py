"""What pyinit's loop imports before its first longrun starts (issue 24): every module here is
time before the services, so what only a feature needs is imported where that feature is used.

Each entry below is imported at its first use: a forensics snapshot, a service's health check,
an s6-rc oneshot without execlineb, the metrics endpoint or file, the YAML file, a subreaper's
process walk. The names are looked up in a fresh interpreter that imports pyinit's two entry
points and nothing else, the way init.py does before anyio.run.
"""

from __future__ import annotations

import subprocess
import sys

from harness import REPO

ON_FIRST_USE = {
    "supervisor.core.forensics",  # a snapshot: before force, or pysvstat --forensics
    "supervisor.core.health", "supervisor.core.healthrun",  # a service with a health check
    "shlex",  # an s6-rc oneshot's command line, without execlineb
    "yaml",  # PYS6_CONFIG
    "psutil",  # a subreaper's descendants, a health-http not on loopback
}


def loaded_by_pyinit() -> set[str]:
    code = "import sys; import supervisor.init, supervisor.root; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    return set(result.stdout.split())


def test_the_loop_imports_no_module_only_a_feature_needs():
    loaded = loaded_by_pyinit()
    assert ON_FIRST_USE & loaded == set()
    assert {name for name in loaded if name.startswith("supervisor.metrics")} == set()  # PYS6_METRICS_* only
