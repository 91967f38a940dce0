"""The pod's monitoring against the real programs: promtool on the alert rules, a real Prometheus
scraping a live pod, a real Pushgateway receiving pycrond's pushes. Loopback only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import REPO, Cron, Pod, free_port, killed_at_exit, pycrond_on_path, wait_for

DEPLOY = REPO / "deploy"


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        package = "prometheus-pushgateway" if "pushgateway" in name else "prometheus"
        pytest.skip(f"needs {name} from Debian's {package} package (.ci/run installs it)")
    return found


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def get_or_nothing(url: str) -> str:
    try:
        return get(url, timeout=2)
    except OSError:
        return ""


# --- the rules ------------------------------------------------------------------------------


def test_the_alert_rules_are_valid_and_each_alert_fires_and_holds_in_promtools_unit_tests():
    promtool = program("promtool")
    checked = subprocess.run([promtool, "check", "rules", "prometheus-rules.yaml"], cwd=DEPLOY,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "prometheus-rules.test.yaml"], cwd=DEPLOY,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_has_a_case_that_fires_it_and_one_that_does_not():
    alerts = {rule["alert"] for group in yaml.safe_load((DEPLOY / "prometheus-rules.yaml").read_text())["groups"]
              for rule in group["rules"]}
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load((DEPLOY / "prometheus-rules.test.yaml").read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts == fired == quiet
    assert {"Pys6ServiceBailed", "Pys6ServiceFlapping", "Pys6EssentialServiceDown", "Pys6CronJobStale",
            "Pys6CronJobFailing", "Pys6MetricsEndpointDown"} <= alerts


def test_the_monitoring_manifests_point_at_the_pods_metrics_port():
    pod_docs = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "pod.yaml").read_text())}
    template = pod_docs["Deployment"]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    listen = {env["name"]: env["value"] for env in container["env"]}["PYS6_METRICS_LISTEN"]
    assert listen == f":{ports['metrics']}"
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    monitoring = {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "monitoring.yaml").read_text())}
    service, monitor = monitoring["Service"], monitoring["ServiceMonitor"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["metadata"]["name"].startswith("pys6")  # the job name the alerts expect


# --- a real Prometheus ----------------------------------------------------------------------


@pytest.fixture
def prometheus_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="pys6-prometheus-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def start_prometheus(directory: Path, target_port: int) -> tuple[subprocess.Popen[bytes], int]:
    binary = program("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus-rules.yaml")],
        "scrape_configs": [{"job_name": "pys6", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 (closed with the directory)
    process = subprocess.Popen(
        [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=log, stderr=log, cwd=directory, start_new_session=True)
    return process, port


def query(port: int, expression: str) -> list[dict]:
    text = get_or_nothing(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    return json.loads(text)["data"]["result"] if text else []


def value_of(port: int, expression: str) -> float | None:
    result = query(port, expression)
    return float(result[0]["value"][1]) if result else None



def test_a_real_prometheus_scrapes_the_pod_sees_a_bail_fires_its_alert_and_counts_cron_successes(
        pod: Pod, prometheus_dir: Path):
    metrics_port = free_port()
    crontab = pod.root / "crontab"
    crontab.write_text("* * * * * * * true\n")
    pod.service("crashy", "echo giving up >&2; exit 1")
    # The pod's own cron service, unchanged: pycrond writes its metrics into pyinit's directory.
    pod.script("services.d/cron/run", (REPO / "services.d" / "cron" / "run").read_text())
    bin_dir = pycrond_on_path(pod.root)
    pod.start(env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{metrics_port}", "CRONTAB": str(crontab),
                   "PATH": f"{bin_dir}:/usr/bin:/bin"})
    process, port = start_prometheus(prometheus_dir, metrics_port)
    with killed_at_exit(process):
        wait_for(lambda: value_of(port, 'up{job="pys6"}') == 1, 60, "Prometheus to scrape pyinit", interval=0.5)
        wait_for(lambda: value_of(port, 'pys6_service_bailed{service="crashy"}') == 1, 60, "the bail, in Prometheus",
                 interval=0.5)
        assert value_of(port, 'pys6_service_starts_total{service="crashy"}') == 5
        assert value_of(port, 'pys6_service_up{service="cron"}') == 1
        first = wait_for(lambda: value_of(port, 'supercronic_successful_executions{command="true"}'), 60,
                         "pycrond's successes, through pyinit's endpoint", interval=0.5)
        wait_for(lambda: (value_of(port, 'supercronic_successful_executions{command="true"}') or 0) >= first + 3, 60,
                 "the success counter to rise", interval=0.5)
        last_success = value_of(port, 'pycrond_last_success_timestamp_seconds{command="true"}')
        assert last_success is not None and abs(last_success - time.time()) < 60

        def bailed_alert() -> dict | None:
            text = get_or_nothing(f"http://127.0.0.1:{port}/api/v1/alerts")
            alerts = json.loads(text)["data"]["alerts"] if text else []
            return next((a for a in alerts if a["labels"]["alertname"] == "Pys6ServiceBailed"
                         and a["labels"]["service"] == "crashy" and a["state"] == "firing"), None)

        alert = wait_for(bailed_alert, 60, "Pys6ServiceBailed to fire", interval=0.5)
        assert alert["labels"]["severity"] == "warning"
        quiet = query(port, 'ALERTS{alertname="Pys6ServiceBailed",service="cron"}')
        assert quiet == []
    assert pod.stop() == 0


# --- a real node-exporter -------------------------------------------------------------------


def test_node_exporters_textfile_collector_takes_the_metrics_file_without_an_error(pod: Pod, prometheus_dir: Path):
    binary = program("prometheus-node-exporter")
    textfiles = prometheus_dir / "textfile"
    textfiles.mkdir()
    pod.service("app", "exec sleep 1000")
    pod.start(env={"PYS6_METRICS_FILE": str(textfiles / "pys6.prom")})
    textfile = textfiles / "pys6.prom"
    wait_for(lambda: textfile.exists() and 'pys6_service_up{service="app"} 1' in textfile.read_text(), 10,
             "the textfile")
    port = free_port()
    log_path = prometheus_dir / "node-exporter.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                                    "--collector.textfile", f"--collector.textfile.directory={textfiles}"],
                                   stdout=log, stderr=log, start_new_session=True)
    with killed_at_exit(process):
        page = wait_for(lambda: get_or_nothing(f"http://127.0.0.1:{port}/metrics") or None, 30, "node-exporter")
        assert "\nnode_textfile_scrape_error 0\n" in page
        assert '\npys6_service_up{service="app"} 1\n' in page
        assert "pys6_service_starts_total" in page
        # node-exporter's own process_* are the only ones: a textfile's would collide with them.
        assert "error gathering metrics" not in log_path.read_text()


# --- a real Pushgateway ---------------------------------------------------------------------


def start_pushgateway(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = program("prometheus-pushgateway")
    port = free_port()
    log = open(directory / "pushgateway.log", "wb")  # noqa: SIM115 (closed with the directory)
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log,
                               cwd=directory, start_new_session=True)
    wait_for(lambda: get_or_nothing(f"http://127.0.0.1:{port}/-/ready") != "", 30, "the Pushgateway", interval=0.2)
    return process, port


def pushed(port: int, name: str) -> float | None:
    for line in get_or_nothing(f"http://127.0.0.1:{port}/metrics").split("\n"):
        if line.startswith(name + "{") and 'command="true"' in line and 'job="pycrond"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_pycrond_pushes_to_a_real_pushgateway_and_its_last_success_reads_back(cron: Cron, prometheus_dir: Path):
    process, port = start_pushgateway(prometheus_dir)
    with killed_at_exit(process):
        cron.crontab.write_text("* * * * * * * true\n")
        cron.start("--pushgateway", f"http://127.0.0.1:{port}")
        first = wait_for(lambda: pushed(port, "supercronic_successful_executions"), 30, "a push", interval=0.2)
        wait_for(lambda: (pushed(port, "supercronic_successful_executions") or 0) >= first + 2, 30,
                 "later pushes", interval=0.2)
        last_success = pushed(port, "pycrond_last_success_timestamp_seconds")
        assert last_success is not None and abs(last_success - time.time()) < 30
        # What the seed's heartbeat alert computes: seconds since the job last succeeded.
        assert time.time() - last_success < 30
        assert not cron.events("pushgateway push failed")
        assert cron.stop(30) == 0


def runs_of(cron: Cron) -> int:
    return cron.stderr().count("job succeeded")


@pytest.mark.parametrize("gateway", ["down", "silent"])
def test_a_pushgateway_that_is_down_or_never_answers_delays_no_job_and_no_exit(cron: Cron, gateway: str):
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        if gateway == "silent":
            sink.listen(64)  # the kernel completes connections; nobody ever reads or answers
        address = f"http://127.0.0.1:{sink.getsockname()[1]}"
        if gateway == "down":
            sink.close()
        cron.crontab.write_text("* * * * * * * true\n")
        cron.start("--pushgateway", address, "--push-timeout", "60")
        wait_for(lambda: runs_of(cron) >= 6, 15, "six runs on schedule while pushes fail or hang", interval=0.2)
        if gateway == "down":
            cron.wait_err("pushgateway push failed")
        started = time.monotonic()
        assert cron.stop(20) == 0  # a push waiting out its 60 s does not hold the exit
        assert time.monotonic() - started < 20
