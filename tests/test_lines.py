"""The pure line splitter and formatters of the merged log."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from supervisor.logs.lines import CUT_MARK, LineSplitter, RecentLines, json_formatter, text_formatter


def split_all(chunks: list[bytes], max_line: int = 64) -> list[bytes]:
    splitter = LineSplitter(max_line)
    out = b"".join(splitter.feed(c) for c in chunks) + splitter.flush()
    return out.split(b"\n")[:-1] if out else []


def test_whole_lines_pass_and_the_tail_waits():
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == b"one\n"
    assert splitter.feed(b"o\nthree") == b"two\n"
    assert splitter.flush() == b"three\n"
    assert splitter.flush() == b""


def test_a_long_line_is_cut_into_marked_pieces_and_the_last_is_plain():
    assert split_all([b"x" * 150 + b"\nnext\n"], max_line=64) == [
        b"x" * 64 + CUT_MARK, b"x" * 64 + CUT_MARK, b"x" * 22, b"next"
    ]


def test_a_long_line_without_newline_is_cut_as_it_arrives():
    splitter = LineSplitter(10)
    out = splitter.feed(b"a" * 25)
    assert out == (b"a" * 10 + CUT_MARK + b"\n") * 2
    assert splitter.flush() == b"a" * 5 + b"\n"


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30), st.data())
def test_any_chunking_gives_back_the_same_lines(lines, data):
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert split_all(chunks, max_line=64) == lines


def test_text_formatter_prefixes_every_line_keeping_bytes():
    fmt = text_formatter(b"[svc] ")
    assert fmt(b"a\n\xff\xfe\n\n") == (b"[svc] a\n[svc] \xff\xfe\n[svc] \n", 3)


def test_json_formatter_makes_one_object_per_line_even_for_bad_utf8():
    fmt = json_formatter("svc", "stderr")
    out, count = fmt(b"hello\n\xff\n")
    assert count == 2
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert records[0] == {"service": "svc", "stream": "stderr", "message": "hello"}
    assert records[1]["message"] == "\\xff"


def test_a_crlf_ending_is_a_plain_newline_but_a_carriage_return_inside_a_line_is_shown():
    from supervisor.logs.lines import text_formatter

    block = b"Server listening\r\nok\r[sshd] forged\r\nlast\r\n"
    assert text_formatter(b"[sshd] ")(block) == (
        b"[sshd] Server listening\n[sshd] ok\\x0d[sshd] forged\n[sshd] last\n", 3)


def ring_of_lines(blocks: list[tuple[str, bytes]], max_lines: int, max_bytes: int) -> list[tuple[str, bytes]]:
    """The reference: a ring of single lines, trimmed from the oldest, the newest always kept."""
    kept: list[tuple[str, bytes]] = []
    for stream, block in blocks:
        kept += [(stream, line) for line in block[:-1].split(b"\n")]
        while len(kept) > 1 and (len(kept) > max_lines or sum(len(line) for _, line in kept) > max_bytes):
            kept.pop(0)
    return kept


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]),
                          st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), min_size=1,
                                   max_size=6).map(lambda lines: b"".join(line + b"\n" for line in lines))),
                max_size=12),
       st.integers(1, 8), st.integers(0, 40), st.integers(0, 20))
def test_the_kept_blocks_give_exactly_the_lines_a_ring_of_lines_keeps(blocks, max_lines, max_bytes, asked):
    recent = RecentLines(max_lines, max_bytes)
    for stream, block in blocks:
        recent.add_block(stream, block)
    expected = ring_of_lines(blocks, max_lines, max_bytes)
    assert recent.tail(asked) == (expected[max(0, len(expected) - asked):] if asked else [])
    assert len(recent) == len(expected)


def test_a_busy_log_keeps_only_a_bounded_number_of_blocks():
    recent = RecentLines()
    block = b"".join(b"line %06d of sixty bytes or so, padded ..............\n" % n for n in range(1000))
    for _ in range(500):
        recent.add_block("stdout", block)
    assert len(recent._blocks) <= 3  # 128 KiB of 60-byte lines: two blocks and the one being trimmed
    assert len(recent) == 1000 and recent.tail(1)[0][1].startswith(b"line 000999")


def test_the_count_a_formatter_gives_is_the_number_of_lines_whatever_they_hold():
    from supervisor.logs.lines import json_formatter, text_formatter

    blocks = [b"a\n", b"\n\n\n", b"x" * 70000 + b"\n", b"ok\r\nbad\x1b[2Jline\n\xe2\x80\xa8sep\n", b"\xc2\x85nel\n" * 9]
    for block in blocks:
        for fmt in (text_formatter(b"[svc] "), text_formatter(b""), json_formatter("svc", "stdout")):
            out, count = fmt(block)
            assert count == block.count(b"\n") == out.count(b"\n"), (block[:40], fmt)
