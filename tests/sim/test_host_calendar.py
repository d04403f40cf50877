"""The host's calendar holds its own (tuple) entries beside SimPy's events: both are served."""

from __future__ import annotations

import random

import pytest
import simpy

from runtime.core.messages import Send
from sim.host import Host
from sim.metrics import MetricsRecorder
from sim.network import Network
from sim.scenario import NetworkSpec


class _Sink:
    """A component that records what reaches it and when."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, object]] = []

    def handle(self, msg: object, now: float, out: list) -> None:
        self.seen.append((now, msg))


def _host() -> tuple[Host, _Sink]:
    host = Host(Network(NetworkSpec(link_latency_us=10), 2), MetricsRecorder(), random.Random(0))
    sink = _Sink()
    host.add(0, _Sink(), 0, 0.0)
    host.add(1, sink, 1, 0.0)
    return host, sink


def test_simpy_events_and_host_entries_interleave_in_time_order() -> None:
    host, sink = _host()
    fired: list[float] = []
    timeout = host.env.timeout(10e-6)  # a SimPy event on the same calendar
    timeout.callbacks.append(lambda _e: fired.append(host.now))
    host._execute([Send(1, "m", 0)], 0, 0.0)  # arrives at 20 us
    host.call_at(30e-6, lambda: setattr(host, "stopped", True))
    host.run_while(lambda: not fired)  # Host.step serves the SimPy event first
    assert fired == [pytest.approx(10e-6)] and not sink.seen
    host.run()  # then the host's own entries, in time order
    assert [m for _, m in sink.seen] == ["m"]
    assert sink.seen[0][0] == pytest.approx(20e-6)
    assert host.now == pytest.approx(30e-6)


def test_a_failed_simpy_event_raises_and_an_empty_calendar_says_so() -> None:
    host, _ = _host()
    event = host.env.event()
    event.fail(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        host.step()
    with pytest.raises(simpy.core.EmptySchedule):
        host.step()
