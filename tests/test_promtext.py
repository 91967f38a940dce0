"""Prometheus' text format: what pyinit writes, and how services' metrics files are merged."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.metrics import promtext
from supervisor.metrics.promtext import Merged, family, labels, merge, number


def merged_text(*files: tuple[str, str], reserved: tuple[str, ...] = ()) -> tuple[str, dict[str, int]]:
    merged = Merged()
    for source, text in files:
        merge(merged, source, text, reserved)
    return merged.text(), merged.rejected


def test_numbers_are_written_as_prometheus_reads_them():
    assert [number(v) for v in (3, 2.0, 0.25, True, math.inf, -math.inf, math.nan, 1e20)] == [
        "3", "2", "0.25", "1", "+Inf", "-Inf", "NaN", "1e+20"]


def test_label_values_and_help_are_escaped():
    assert labels(service='a"b\\c\nd') == '{service="a\\"b\\\\c\\nd"}'
    assert family("x_total", "counter", "one\nline", [("", 1)])[0] == "# HELP x_total one\\nline"


def test_a_services_families_are_kept_with_their_help_type_and_histogram_samples():
    text, rejected = merged_text(("a.prom", (
        "# HELP job_seconds how long\n# TYPE job_seconds histogram\n"
        'job_seconds_bucket{le="1"} 2\njob_seconds_bucket{le="+Inf"} 3\njob_seconds_sum 4.5\njob_seconds_count 3\n'
        "# a comment\n\nplain_metric 7 1700000000000\n")))
    assert rejected == {}
    assert text.splitlines() == [
        "# HELP job_seconds how long", "# TYPE job_seconds histogram",
        'job_seconds_bucket{le="1"} 2', 'job_seconds_bucket{le="+Inf"} 3', "job_seconds_sum 4.5", "job_seconds_count 3",
        "plain_metric 7 1700000000000"]


def test_lines_that_are_not_the_format_are_left_out_and_counted_per_file():
    text, rejected = merged_text(("bad.prom", (
        "good 1\nno value\n{x=\"y\"} 3\nbad-name 1\nbroken{a=\"b} 1\nvalue notanumber\n"
        "# TYPE t nonsense\nt 1\nok_two{a=\"b\",} 2\n" + "x" * 300 + " 1e400\n")))
    assert text.splitlines() == ["good 1", 'ok_two{a="b",} 2', "x" * 300 + " 1e400"]
    assert rejected == {"bad.prom": 7}  # 5 bad samples, a bad TYPE, and t's sample of that refused family


def test_pyinits_own_names_cannot_be_shadowed_by_a_file():
    text, rejected = merged_text(("evil.prom", "# TYPE pys6_service_up gauge\npys6_service_up{service=\"sshd\"} 1\n"
                                               "process_open_fds 3\nmine 1\n"), reserved=("pys6_", "process_"))
    assert "pys6_service_up" not in text.replace("# TYPE pys6_service_up gauge", "")
    assert "mine 1" in text and "process_open_fds" not in text
    assert rejected == {"evil.prom": 2}


def test_one_family_from_two_files_is_served_once_and_a_series_twice_only_once():
    text, rejected = merged_text(
        ("a.prom", '# HELP shared_total first\n# TYPE shared_total counter\nshared_total{f="a"} 1\n'),
        ("b.prom", '# HELP shared_total second\n# TYPE shared_total counter\nshared_total{f="b"} 2\n'
                   'shared_total{f="a"} 9\n'),
        ("c.prom", "# TYPE shared_total gauge\nshared_total{f=\"c\"} 3\n"))
    assert text.splitlines() == ["# HELP shared_total first", "# TYPE shared_total counter",
                                 'shared_total{f="a"} 1', 'shared_total{f="b"} 2']
    assert rejected == {"c.prom": 1}  # another type for the same family


label_value = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a_total", "b", "c_seconds"]), label_value,
                          st.floats(allow_nan=True) | st.integers(-10**18, 10**18)), max_size=20))
def test_what_pyinit_writes_reads_back_whole(samples):
    """Whatever a label holds, a family written here is read back by the merger with nothing left out."""
    lines: list[str] = []
    for name in ("a_total", "b", "c_seconds"):
        mine = [(labels(job=value), v) for n, value, v in samples if n == name]
        if mine:
            lines += family(name, "counter" if name.endswith("_total") else "gauge", f"help of {name}", mine)
    text, rejected = merged_text(("x.prom", "\n".join(lines) + "\n"))
    assert rejected == {}
    distinct = {(n, value) for n, value, _v in samples}
    assert len([line for line in text.split("\n") if line and not line.startswith("#")]) == len(distinct)


@given(st.text(max_size=300))
def test_no_text_breaks_the_merger(text):
    merged = Merged()
    merge(merged, "f.prom", text, ("pys6_",))
    again = Merged()
    merge(again, "g.prom", merged.text())
    assert again.rejected == {}  # what survives is valid


def test_content_type_is_the_text_format():
    assert promtext.CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_values_and_timestamps_are_read_as_the_format_writes_them():
    good = ["a 1", "a -2.5", "a 1.", "a .5", "a 1e5", "a 1.5E-3", "a +Inf", "a -Inf", "a NaN", "a 3 1700000000000"]
    bad = ["a 1.1e", "a e5", "a 0x10", "a 1..2", "a Infinity", "a 1 2 3", "a 1 1.5", "a 1 " + "9" * 20]
    assert [promtext.parse_sample(line) for line in good] == [("a", "")] * len(good)
    assert [promtext.parse_sample(line) for line in bad] == [None] * len(bad)
    assert promtext.parse_sample('a{y="2", x="1",} 1') == ("a", "x=1,y=2")  # one series, however written


PATHOLOGICAL = '''
import sys
from supervisor.metrics import promtext
n = 1_000_000
lines = ["a" + " " * n + "1 " + " " * n + "x", "a{" + " " * n + "x", 'a{b="c",' + " " * n + "}x",
         "a{" + 'b="' + "\\\\\\\\" * n, 'a{b="' + '\\\\"' * n + "} 1", "a " + "1" * n + "x",
         "a " + "1" * n + "." + "1" * n + "e", "#" + " " * n + "x", "# HELP " + "a" * n + "{"]
merged = promtext.Merged()
promtext.merge(merged, "f", "\\n".join(lines))
print(merged.rejected.get("f", 0))
'''


def test_a_line_of_a_million_spaces_or_digits_is_rejected_in_one_pass():
    """A regular expression with two ways of splitting whitespace or digits takes hours on such a line,
    and PID 1 would hold its loop for all of them: run it where a bound can stop it."""
    import subprocess
    import sys

    from harness import REPO

    result = subprocess.run([sys.executable, "-c", PATHOLOGICAL], capture_output=True, text=True, timeout=60,
                            cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"  # the two comments are comments
