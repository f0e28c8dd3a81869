"""Hypothesis strategies for simuwsgi: fault plans, uWSGI options, timelines, packets.

Hypothesis is an optional dependency (``pip install 'simuwsgi[chaos]'``); it is
imported when a strategy is first built. Every strategy shrinks toward the simple
case: fewer faults, earlier times, fewer workers, fewer requests.

    from hypothesis import given
    from simuwsgi.strategies import fault_plans

    @given(fault_plans(processes=["worker1", "spooler1"], within=60))
    def test_no_charge_twice(plan):
        with Simulation(OPTIONS, app_dir=APP_DIR) as sim:
            sim.apply(plan)
            ...
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from .faults import (
    ClockStep,
    Corrupt,
    Delay,
    DiskFault,
    Duplicate,
    DuringSpoolTask,
    ExceptionStorm,
    FaultPlan,
    Kill,
    Loss,
    NetworkFault,
    Partition,
    Reorder,
    SignalQueueFull,
    SlowRequests,
    TimeZone,
)

__all__ = ["fault_plans", "packets", "timelines", "uwsgi_options"]


def _st() -> Any:
    try:
        from hypothesis import strategies
    except ImportError:
        raise ImportError("simuwsgi.strategies needs hypothesis: "
                          "pip install 'simuwsgi[chaos]'") from None
    return strategies


def fault_plans(*, processes: Sequence[str] = ("worker1",), within: float = 60.0,
                max_faults: int = 3, kinds: Sequence[str] = ("kill",),
                nodes: Sequence[str] = ()) -> Any:
    """``FaultPlan`` values of up to ``max_faults`` faults of ``kinds`` (``kill``,
    ``clock``, ``tz``, ``storm``, ``slow``, ``disk``, ``signals``, and with the names
    of a cluster's ``nodes`` ``net``: partitions, loss, delay, duplication, reordering,
    corruption)
    at times in ``[0, within]``; in a cluster each fault is on one of the nodes."""
    st = _st()
    if not processes:
        raise ValueError("fault_plans: processes must name at least one process")
    if within <= 0 or max_faults < 0:
        raise ValueError(f"fault_plans: within={within!r} must be > 0 and "
                         f"max_faults={max_faults!r} >= 0")
    times = st.floats(0, within, allow_nan=False).map(lambda t: round(t, 3))
    makers = {
        "kill": st.one_of(
            st.builds(lambda p, t: Kill(p, at=t), st.sampled_from(list(processes)), times),
            st.builds(lambda n: Kill("spooler1", when=DuringSpoolTask(nth=n)),
                      st.integers(1, 5))) if any(p.startswith("spooler") for p in processes)
        else st.builds(lambda p, t: Kill(p, at=t), st.sampled_from(list(processes)), times),
        "clock": st.builds(lambda d, t: ClockStep(d, at=t),
                           st.sampled_from([1, -1, 60, -60, 3600, -3600]), times),
        "tz": st.builds(lambda z, t: TimeZone(z, at=t),
                        st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]), times),
        "storm": st.builds(lambda d, t: ExceptionStorm(d, at=t), st.integers(1, 60), times),
        "slow": st.builds(lambda d, t: SlowRequests(d, at=t), st.integers(1, 60), times),
        "disk": st.builds(lambda k, t: DiskFault(k, at=t),
                          st.sampled_from(["full", "readonly", "eio", "torn"]), times),
        "signals": st.builds(lambda t: SignalQueueFull(at=t), times),
    }
    if len(nodes) > 1:
        makers["net"] = _network_faults(st, list(nodes), times)
    bad = [k for k in kinds if k not in makers]
    if bad:
        raise ValueError(f"fault_plans: unknown kind {bad[0]!r} (known: {', '.join(makers)})")
    one = st.one_of(*(makers[k] for k in kinds))
    if nodes:
        one = st.tuples(one, st.sampled_from(list(nodes))).map(
            lambda pair: pair[0] if isinstance(pair[0], NetworkFault) else pair[0].on(pair[1]))
    return st.lists(one, max_size=max_faults).map(lambda faults: FaultPlan(*faults))


def _network_faults(st: Any, nodes: list[str], times: Any) -> Any:
    """Faults of the links between ``nodes``: a partition (one node or a split in two),
    or a link setting for a while."""
    durations = st.sampled_from([10, 30, 60, 120])
    split = st.permutations(nodes).flatmap(
        lambda order: st.integers(1, len(order) - 1).map(
            lambda k: (tuple(order[:k]), tuple(order[k:]))))
    pair = st.permutations(nodes).map(lambda order: (order[0], order[1]))
    link = st.builds(lambda kind, ab, value, t, d: kind(*ab, value, at=t, duration=d),
                     st.sampled_from([Loss, Duplicate, Reorder, Corrupt]), pair,
                     st.sampled_from([0.1, 0.5, 0.9]), times, durations)
    delay = st.builds(lambda ab, value, t, d: Delay(*ab, value, at=t, duration=d), pair,
                      st.sampled_from([0.01, 0.5, 5.0]), times, durations)
    partition = st.builds(lambda groups, t, d: Partition(*groups, at=t, duration=d),
                          split, times, durations)
    return st.one_of(partition, link, delay)


def uwsgi_options(*, app: str = "app.py", max_processes: int = 4) -> Any:
    """Argv lists of uWSGI options for ``app``: master, processes, harakiri,
    max-requests, spooler frequency, a cache."""
    st = _st()

    def build(processes: int, harakiri: int, max_requests: int, cache: bool) -> list[str]:
        argv = ["--master", "--processes", str(processes)]
        if harakiri:
            argv += ["--harakiri", str(harakiri)]
        if max_requests:
            argv += ["--max-requests", str(max_requests)]
        if cache:
            argv += ["--cache2", "name=default,items=100"]
        return argv + ["--wsgi-file", app]

    return st.builds(build, st.integers(1, max_processes), st.sampled_from([0, 5, 30]),
                     st.sampled_from([0, 10, 100]), st.booleans())


def timelines(*, paths: Sequence[str] = ("/",), within: float = 60.0,
              max_requests: int = 20) -> Any:
    """Sorted lists of ``(at, method, path)`` requests, for ``sim.submit(method, path,
    at=at)``."""
    st = _st()
    if not paths:
        raise ValueError("timelines: paths must name at least one path")
    one = st.tuples(st.floats(0, within, allow_nan=False).map(lambda t: round(t, 3)),
                    st.sampled_from(["GET", "POST"]), st.sampled_from(list(paths)))
    return st.lists(one, max_size=max_requests).map(sorted)


def packets() -> Any:
    """uwsgi-protocol packets (``simuwsgi.protocol``): a header and a vars block of
    random keys and values, encoded; shrink toward an empty packet."""
    st = _st()
    from .protocol import encode_vars

    def packet(pairs: dict[bytes, bytes]) -> bytes:
        body = encode_vars(list(pairs.items()))
        return struct.pack("<BHB", 0, len(body), 0) + body  # modifier1 0: a WSGI request

    keys = st.binary(min_size=1, max_size=32)  # uWSGI refuses a zero-length key
    return st.dictionaries(keys, st.binary(max_size=32), max_size=8).map(packet)
