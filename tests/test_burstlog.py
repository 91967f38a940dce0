"""BurstLog: one line for the first of a burst, one with the count when the burst is over."""

from __future__ import annotations

import anyio

from supervisor.logs.events import BurstLog


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.events.append((event, fields))


def test_a_burst_is_one_line_and_a_count_and_the_next_burst_starts_afresh():
    recorder = Recorder()

    async def scenario() -> None:
        burst = BurstLog(recorder, "control refused", quiet=0.2)
        for uid in range(100):
            burst(peer_uid=uid)
        assert recorder.events == [("control refused", {"peer_uid": 0})]
        await anyio.sleep(0.5)
        assert recorder.events[1] == ("control refused (burst)", {"more": 99})
        burst(peer_uid=7)
        assert recorder.events[2] == ("control refused", {"peer_uid": 7})
        await anyio.sleep(0.5)
        assert len(recorder.events) == 3  # a lone event has no count to report

    anyio.run(scenario)
