"""The pure control protocol, s6-svstat's words and fields, and pysvc's flag parsing."""

from __future__ import annotations

import json
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.control import protocol, statusfmt
from supervisor.control.protocol import ProtocolError, WireAction, decode_request
from supervisor.control.svc import parse


def frame(**body):
    return json.dumps({"v": protocol.VERSION, **body}).encode()


@pytest.mark.parametrize("argument", ["sshd", "/run/service/sshd", "/etc/services.d/sshd/", "sshd@1"])
def test_service_names_are_bare_or_the_last_component_of_a_path(argument):
    assert protocol.service_name(argument).startswith("sshd")


def test_a_path_only_ever_names_its_last_component():
    assert protocol.service_name("../../etc/sshd") == "sshd"


@pytest.mark.parametrize("argument", ["", "..", "/etc/..", "a b", "x;rm -rf /", "$(id)", "-d", "a" * 200])
def test_bad_service_names_are_refused(argument):
    with pytest.raises(ProtocolError):
        protocol.service_name(argument)


def test_requests_round_trip():
    request = parse(["-d", "-wD", "-T", "500", "/run/service/sshd", "cron"])
    again = decode_request(protocol.encode(request.to_json()).rstrip(b"\n"))
    assert again == request
    assert again.actions == (WireAction("down"),) and again.wait == "finished" and again.timeout_ms == 500


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1]", "wrong type"), (b'{"verb":"status"}', "version"),
    (frame(verb="nope"), "unknown verb"), (frame(verb="status", services="sshd"), "wrong type"),
    (frame(verb="status", services=["../x"]), "invalid service"), (frame(verb="control", services=["a"]), "nothing"),
    (frame(verb="control", services=["a"], actions=[{"do": "signal", "signal": 11}]), "not allowed"),
    (frame(verb="control", services=["a"], actions=[{"do": "explode"}]), "unknown action"),
    (frame(verb="control", services=["a"], wait="later"), "unknown wait"),
    (frame(verb="control", services=["a"], wait="up", timeout_ms=-1), "timeout_ms"),
    (frame(verb="log", services=["a", "b"]), "exactly one"), (frame(verb="log", services=["a"], lines=0), "lines"),
    (frame(verb="status", services=[True]), "wrong type"), (b"{" * 70000, "too large"),
])
def test_garbage_is_a_clear_protocol_error(raw, message):
    with pytest.raises(ProtocolError, match=message):
        decode_request(raw)


@settings(max_examples=2000)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_frame_decodes_or_raises_a_protocol_error(raw):
    try:
        decode_request(raw)
    except ProtocolError as exc:
        assert exc.code == protocol.EXIT_USAGE


def test_pysvc_letters_map_to_s6s_meanings():
    request = parse(["-abqhkti12pcy", "svc"])
    assert [a.signum for a in request.actions] == [
        signal.SIGALRM, signal.SIGABRT, signal.SIGQUIT, signal.SIGHUP, signal.SIGKILL, signal.SIGTERM,
        signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGSTOP, signal.SIGCONT, signal.SIGWINCH]
    assert not any(a.group for a in request.actions)
    assert [(a.signum, a.group) for a in parse(["-PCK", "svc"]).actions] == [
        (signal.SIGSTOP, True), (signal.SIGCONT, True), (signal.SIGKILL, True)]
    assert [a.do for a in parse(["-uUdDoOr", "svc"]).actions] == [
        "up", "up-remove-down", "down", "down-create-down", "once", "once-at-most", "restart"]
    assert parse(["-s", "hup", "x"]).actions == (WireAction("signal", signal.SIGHUP),)
    assert parse(["-sSIGUSR1", "x"]).actions == (WireAction("signal", signal.SIGUSR1),)
    assert parse(["-wR", "-T0", "x"]).wait == "restarted-ready"


@pytest.mark.parametrize("argv", [["-d"], ["svc"], ["-z", "svc"], ["-w", "svc"], ["-wz", "svc"], ["-T", "soon", "-d", "x"],
                                  ["-s", "SEGV", "x"], ["-x", "svc"], ["-d", "bad/../name/.."]])
def test_pysvc_refuses_wrong_usage(argv):
    with pytest.raises(ProtocolError) as caught:
        parse(argv)
    assert caught.value.code == protocol.EXIT_USAGE


def record(**changes):
    base = {"name": "svc", "state": "up", "pid": 123, "pgid": 123, "seconds": 4567.9, "since": 1.0, "exitcode": None,
            "signal": None, "signum": None, "normally": "up", "want": "up", "ready": True, "ready_seconds": 4566.2,
            "ready_since": 2.0, "paused": False, "finishing": False, "started": True, "bailed": False, "deaths": 0,
            "crash_deaths": 5, "window": 60.0, "essential": False}
    return base | changes


def test_the_spec_examples_word_for_word():
    assert statusfmt.words(record()) == "up (pid 123 pgid 123) 4567 seconds, normally up, ready 4566 seconds"
    assert statusfmt.words(record(state="down", pid=None, exitcode=1, seconds=12.4, ready_seconds=12.4, bailed=True,
                                  deaths=5)) == (
        "down (exitcode 1) 12 seconds, normally up, want up, bailed (5 deaths in 60 seconds)")
    assert statusfmt.words(record(state="down", pid=None, signum=15, seconds=3.2, normally="down", want="down")) == (
        "down (signal SIGTERM) 3 seconds, normally down")
    assert statusfmt.words(record(state="down", pid=None, started=False, seconds=0)) == "down (not started yet)"
    assert statusfmt.words(record(state="down", pid=None, signum=15, seconds=3), numeric_signal=True).startswith(
        "down (signal 15) 3 seconds")


def test_s6_fields_as_s6_svstat_prints_them():
    up = record()
    down = record(state="down", pid=None, signum=15, seconds=7.9)
    fields = ["up", "wantedup", "normallyup", "ready", "pid", "pgid", "exitcode", "signal", "signum", "updownfor"]
    assert statusfmt.fields_line(up, fields) == "true true true true 123 123 -1 NA -1 4567"
    # ready is "pid && flagready" in s6-svstat: false for a down service (checked against the real
    # s6-svstat in test_s6_interface.py)
    assert statusfmt.fields_line(down, fields) == "false true true false -1 123 -1 SIGTERM 15 7"
    assert statusfmt.tai64n(0.0) == "@400000000000002500000000"


def test_check_wants_normally_up_services_up_and_ready():
    assert statusfmt.is_as_it_should_be(record())
    assert not statusfmt.is_as_it_should_be(record(state="down"))
    assert not statusfmt.is_as_it_should_be(record(ready=False))
    assert statusfmt.is_as_it_should_be(record(state="down", normally="down"))


# --- the wire's JSON and the signal names: what json and signal would give, without importing them -----------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@given(_JSON_VALUES, st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_wire_json_writes_what_json_writes_and_reads_it_back(value, sort_keys, ensure_ascii):

    assert protocol.dumps(value, compact=True, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == \
        json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    text = protocol.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    assert text == json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    assert protocol.loads(text) == json.loads(text) == value
    assert protocol.loads(f" \t{text}\r\n".encode()) == value


@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
@settings(max_examples=500, deadline=None)
def test_the_wire_json_accepts_and_refuses_what_json_does(data):

    try:
        expected = ("value", json.loads(data.decode("utf-8")))
    except (ValueError, RecursionError) as exc:
        expected = ("error", type(exc))
    try:
        got = ("value", protocol.loads(data))
    except (ValueError, RecursionError) as exc:
        got = ("error", type(exc))
    if expected[0] == "value" and isinstance(expected[1], float) and expected[1] != expected[1]:
        assert got[0] == "value" and got[1] != got[1]  # NaN
    else:
        assert got == expected


@pytest.mark.parametrize("text", ["[" * 100_000, "1" * 5000, "[1,", "{\"a\" 1}", "\"\\ud800\"x", "NaN", "-Infinity"])
def test_the_wire_json_fails_as_json_fails_on_deep_long_and_cut_input(text):

    def outcome(load):
        try:
            return repr(load(text))
        except (ValueError, RecursionError) as exc:
            return type(exc).__name__

    assert outcome(protocol.loads) == outcome(json.loads)


def test_the_wire_json_refuses_what_json_cannot_write():

    for value in ({1j: 1}, {"a": object()}, [b"bytes"]):
        with pytest.raises(TypeError):
            protocol.dumps(value)
    looped: list = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular"):
        protocol.dumps(looped)


def test_signal_names_are_signals_own_for_every_number():
    from supervisor.base.terms import parse_signal_name, signal_name

    for number in range(1, 65):
        try:
            expected = signal.Signals(number).name
        except ValueError:
            continue
        assert signal_name(number) == expected
    for name, member in signal.Signals.__members__.items():  # aliases too: SIGIOT, SIGCLD, SIGPOLL
        assert parse_signal_name(name) == int(member)
        assert parse_signal_name(name[3:].lower()) == int(member)
