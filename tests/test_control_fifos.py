"""The supervise/control FIFOs' reader (supervisedir.ControlFifos), on real pipes in a real
event loop: letters are applied in the order they came, and a flood is not read into memory
faster than it is applied."""

from __future__ import annotations

import os
from dataclasses import dataclass

import anyio

from supervisor.s6.supervisedir import MAX_CONTROL_READ, MAX_PENDING_LETTERS, ControlFifos


@dataclass
class FakeDirectory:  # what ControlFifos reads of a SuperviseDir
    name: str
    control_fd: int


class QuietLog:
    def error(self, *args: object, **fields: object) -> None:
        raise AssertionError(f"unexpected error: {args} {fields}")


def _fifo(name: str) -> tuple[FakeDirectory, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    return FakeDirectory(name, read_end), write_end


def test_letters_are_applied_in_the_order_they_came() -> None:
    applied: list[tuple[str, str]] = []

    async def apply(name: str, letter: str) -> None:
        await anyio.sleep(0)  # a command awaits its outcome; the next letter waits for it
        applied.append((name, letter))

    async def scenario() -> None:
        fifos = ControlFifos(apply, QuietLog())
        (one, one_w), (two, two_w) = _fifo("one"), _fifo("two")
        async with anyio.create_task_group() as group:
            group.start_soon(fifos.serve)
            fifos.watch(one)
            fifos.watch(two)
            os.write(one_w, b"du")
            with anyio.fail_after(5):
                while len(applied) < 2:
                    await anyio.sleep(0.01)
            os.write(two_w, b"t")
            os.write(one_w, b"k")
            with anyio.fail_after(5):
                while len(applied) < 4:
                    await anyio.sleep(0.01)
            fifos.forget(one)
            fifos.forget(two)
            group.cancel_scope.cancel()
        for fd in (one.control_fd, one_w, two.control_fd, two_w):
            os.close(fd)

    anyio.run(scenario)
    assert applied[:2] == [("one", "d"), ("one", "u")]
    assert sorted(applied[2:]) == [("one", "k"), ("two", "t")]


def test_a_flood_waits_in_its_pipe_not_in_pid1s_memory() -> None:
    gate = anyio.Event()
    applied = [0]

    async def apply(name: str, letter: str) -> None:
        await gate.wait()  # nothing is applied until the test says
        applied[0] += 1

    async def scenario() -> tuple[int, int, int]:
        fifos = ControlFifos(apply, QuietLog())
        flooded, write_end = _fifo("flooded")
        written = 0
        async with anyio.create_task_group() as group:
            group.start_soon(fifos.serve)
            fifos.watch(flooded)
            for _ in range(2000):  # write what the pipe takes, and let the loop read, over and over
                try:
                    written += os.write(write_end, b" " * 4096)
                except BlockingIOError:
                    pass
                await anyio.sleep(0)
            held = fifos.pending_letters
            gate.set()  # now let everything through: every letter is applied in the end
            os.set_blocking(write_end, True)
            with anyio.fail_after(30):
                while applied[0] < written:
                    await anyio.sleep(0.01)
            fifos.forget(flooded)
            group.cancel_scope.cancel()
        os.close(flooded.control_fd)
        os.close(write_end)
        return written, held, applied[0]

    written, held, applied_total = anyio.run(scenario)
    assert held <= MAX_PENDING_LETTERS + MAX_CONTROL_READ  # the reader stopped; the rest stayed in the pipe
    assert written > MAX_PENDING_LETTERS + MAX_CONTROL_READ  # the flood was more than the reader may hold
    assert applied_total == written  # and nothing was lost
