"""An s6-rc pipeline's consumer at shutdown: SIGTERM as soon as its producer is down (and its
input closed), as s6-rc's `s6-rc -bda change` does under real s6-overlay (the rig: pipe-log
gets SIGTERM a millisecond after pipe-prod stopped), not S6_SERVICES_GRACETIME later."""

from __future__ import annotations

import time

from test_s6rc import in_user_bundle, rc

from harness import Pod, wait_for


def test_a_pipeline_consumer_that_does_not_read_its_input_gets_sigterm_once_its_producer_is_down(pod: Pod):
    state = pod.state
    rc(pod, "prod", "longrun", ("base",), producer_for="cons\n", run="#!/bin/sh\nexec sleep 1000\n")
    # a consumer that never reads stdin (the rig's stand-in): EOF alone never ends it
    rc(pod, "cons", "longrun", ("base",), consumer_for="prod\n",
       run=f"#!/bin/sh\ntrap 'touch {state}/cons-term; exit 0' TERM\ntouch {state}/cons-up\n"
           "while :; do sleep 0.05; done\n")
    in_user_bundle(pod, "prod")
    pod.start(env={"S6_SERVICES_GRACETIME": "5000"})
    wait_for(lambda: (state / "cons-up").exists(), 20, f"the consumer up\n{pod.stderr()[-1500:]}")
    asked = time.monotonic()
    assert pod.stop() == 0
    took = time.monotonic() - asked
    assert (state / "cons-term").exists(), pod.stderr()[-1500:]
    assert took < 2.5, f"stop took {took:.2f} s: the consumer waited out the grace time\n{pod.stderr()[-1500:]}"
