"""uWSGI metrics (``--enable-metrics``, ``--metric``) and SNMP values (``--snmp``).

What it models (``core/metrics.c``, ``plugins/python/uwsgi_pymodule.c``;
``shared/spec/api.md`` §17, §18):

* the metrics table exists with ``--enable-metrics`` or any ``--metric`` (which implies
  it). Built-in metrics are registered as uWSGI does (``core.*``, ``worker.N.*`` for N
  in 0..numproc, ``worker.N.core.M.*``, ``socket.N.listen_queue``, aliases
  ``rss_size``/``vsz_size``); they are collector-driven, so the ``metric_*`` writers
  refuse them (None).
* ``--metric name`` or ``--metric name=..,type=counter|gauge|absolute|alias,
  initial_value=..,collector=..,alias=..,children=..``: a plain metric starts at
  ``initial_value`` and the writers change it with C int64 arithmetic (wrap); metrics
  with a collector or of type alias refuse writes. ``metric_div(x, 0)`` → None.
  ``metric_set_min`` keeps uWSGI's condition ``value > initial_value && value < current``.
* ``metric_get`` → the value, 0 for unknown metrics or without metrics.
* every write is recorded in the trace (``metric.set``), and the scenario reads values
  with ``sim.inst.subsystems['metrics'].value(name)``.
* SNMP (``--snmp``): 100 shared ``(type, value)`` slots, ``snmp_*`` functions with
  uWSGI's parsing (``b`` oid, ``I`` value, masked to 32 bits also for the 64-bit
  counters, whose value field is 64-bit), oids outside 1..100 → None; the decr
  functions report parse errors under the incr names, as uWSGI's format strings do.

Left out: collectors are evaluated on read (uWSGI's metrics thread refreshes them once
a second, so real values lag by up to a second); ``freq``, thresholds, alarms,
``--metrics-dir``, pushing to stats/carbon; the SNMP UDP server itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..server._pyarg import no_kwargs, parser
from ..server.config import socket_fds

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["Metrics"]

_U64 = 0xFFFFFFFFFFFFFFFF


def _i64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


def _strtoll(text: str) -> int:
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    digits = ""
    for ch in text.lstrip("+-"):
        if not ch.isdigit():
            break
        digits += ch
    return _i64(sign * int(digits)) if digits else 0


class _Metric:
    __slots__ = ("alias", "children", "collector", "initial", "name", "oid", "read", "type",
                 "value")

    def __init__(self, name: str, mtype: str = "counter", collector: str | None = None,
                 initial: int = 0, oid: str = "") -> None:
        self.name = name
        #: the SNMP oid under uWSGI's tree (the stats server shows it)
        self.oid = oid
        self.type = mtype
        self.collector = collector
        self.initial = initial
        self.value = 0
        self.alias: _Metric | None = None
        self.children: list[_Metric] = []
        #: for built-in collector metrics: reads the simulated counter
        self.read: Any = None


class Metrics:
    """The metrics table and the SNMP slots of one instance."""

    @classmethod
    def create(cls, inst: Instance) -> Metrics | None:
        opts = inst.opts
        enabled = opts.flag("enable-metrics") or bool(opts.strings("metric"))
        # metric_* always exist in the module (None/0 without metrics)
        return cls(inst, enabled, opts.has("snmp"))

    def __init__(self, inst: Instance, enabled: bool, snmp: bool) -> None:
        self.inst = inst
        self.enabled = enabled
        self.snmp = snmp
        self.metrics: dict[str, _Metric] = {}
        #: how many plugin metrics lead the table
        self._plugin_metrics = 0
        self.snmp_values: list[list[int]] = [[0, 0] for _ in range(100)]
        self.snmp_community = b""
        if enabled:
            self._builtins()
            for spec in inst.opts.strings("metric"):
                self._custom(spec)
            for m in self.metrics.values():
                if m.initial and m.alias is None:
                    m.value = m.initial

    # -- registration ------------------------------------------------------------------
    def _add(self, m: _Metric) -> _Metric:
        if m.name in self.metrics:
            raise ConfigError(f'metric "{m.name}" already registered')
        self.metrics[m.name] = m
        return m

    def _builtins(self) -> None:
        inst = self.inst

        def ptr(name: str, fn: Any, mtype: str = "counter", oid: str = "") -> _Metric:
            m = self._add(_Metric(name, mtype, "ptr", oid=oid))
            m.read = fn
            return m

        def worker_attr(wid: int, attr: str) -> Any:
            def read() -> int:
                w = inst.workers.get(wid)
                return int(getattr(w, attr, 0) or 0) if w is not None else 0
            return read

        def respawns(wid: int) -> Any:
            def read() -> int:  # uwsgi.workers[wid].respawn_count: 1 at the first spawn
                w = inst.workers.get(wid)
                return w.respawn_count + 1 if w is not None else 0
            return read

        def core_requests(wid: int, core: int, what: str = "core_counts") -> Any:
            def read() -> int:  # uwsgi.workers[wid].cores[core].requests (routed_requests)
                w = inst.workers.get(wid)
                return getattr(w, what)[core] if w is not None else 0
            return read

        zero = lambda: 0
        ptr("core.routed_signals", zero, oid="5.1")
        ptr("core.unrouted_signals", zero, oid="5.2")
        ptr("core.busy_workers", lambda: sum(
            1 for w in inst.workers.values() if w.alive and w.busy), "gauge", "5.3")
        ptr("core.idle_workers", lambda: sum(
            1 for w in inst.workers.values() if w.alive and not w.busy), "gauge", "5.4")
        ptr("core.overloaded", zero, oid="5.5")
        # the totals are registered now and listed after the workers' (metrics.c)
        totals = {n: _Metric(n, t, c, oid=o) for n, t, c, o in (
            ("core.total_tx", "counter", "sum", "5.100"),
            ("core.total_rss", "gauge", "sum", "5.101"),
            ("core.total_vsz", "gauge", "sum", "5.102"),
            ("core.avg_response_time", "gauge", "avg", "5.103"),
            ("core.total_running_time", "counter", "sum", "5.104"))}
        for i in range(inst.numproc + 1):
            # uwsgi.workers[0].requests: every worker's (uwsgi_close_request counts both)
            ptr(f"worker.{i}.requests", worker_attr(i, "requests") if i else
                (lambda: inst.total_requests), oid=f"3.{i}.1")
            ptr(f"worker.{i}.delta_requests", worker_attr(i, "delta_requests"), "absolute",
                f"3.{i}.2")
            ptr(f"worker.{i}.failed_requests", zero, oid=f"3.{i}.13")
            ptr(f"worker.{i}.respawns", respawns(i), oid=f"3.{i}.14")
            avg = ptr(f"worker.{i}.avg_response_time", worker_attr(i, "avg_rt"), "gauge",
                      f"3.{i}.8")
            tx = ptr(f"worker.{i}.total_tx", worker_attr(i, "tx"), oid=f"3.{i}.9")
            rss = ptr(f"worker.{i}.rss_size", zero, "gauge", f"3.{i}.11")
            vsz = ptr(f"worker.{i}.vsz_size", zero, "gauge", f"3.{i}.12")
            rt = ptr(f"worker.{i}.running_time", worker_attr(i, "running_time"),
                     oid=f"3.{i}.13")
            if i > 0:
                totals["core.avg_response_time"].children.append(avg)
                totals["core.total_tx"].children.append(tx)
                totals["core.total_rss"].children.append(rss)
                totals["core.total_vsz"].children.append(vsz)
                totals["core.total_running_time"].children.append(rt)
                if not inst.opts.flag("metrics-no-cores"):
                    for j in range(inst.cores):
                        for what, leaf in (("requests", 1), ("write_errors", 3),
                                           ("routed_requests", 4), ("static_requests", 5),
                                           ("offloaded_requests", 6), ("exceptions", 7),
                                           ("read_errors", 8)):
                            counts = {"requests": "core_counts",
                                      "routed_requests": "core_routed"}.get(what)
                            ptr(f"worker.{i}.core.{j}.{what}",
                                core_requests(i, j, counts) if counts and j < inst.threads
                                else zero, oid=f"3.{i}.2.{j}.{leaf}")
        for total in totals.values():
            self._add(total)
        for pos, _fd in enumerate(socket_fds(inst.opts)):
            ptr(f"socket.{pos}.listen_queue", lambda: len(inst.listen_queue), "gauge",
                f"7.{pos}.1")
        for alias, target in (("rss_size", "core.total_rss"), ("vsz_size", "core.total_vsz")):
            m = self._add(_Metric(alias, "alias"))
            m.alias = self.metrics[target]

    def _custom(self, spec: str) -> None:
        if "=" not in spec:
            self._add(_Metric(spec))
            return
        kv: dict[str, str] = {}
        for part in spec.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise ConfigError(f"invalid metric keyval syntax: {spec}")
            kv[key] = value
        name = kv.get("name")
        if not name:
            raise ConfigError(f"you need to specify a metric name: {spec}")
        mtype = kv.get("type", "counter")
        if mtype not in ("gauge", "absolute", "alias"):
            mtype = "counter"
        m = self._add(_Metric(name, mtype, kv.get("collector") or None,
                              _strtoll(kv.get("initial_value", "0")), kv.get("oid", "")))
        for child in filter(None, kv.get("children", "").split(";")):
            if child not in self.metrics:
                raise ConfigError(f'unable to find metric "{child}"')
            m.children.append(self.metrics[child])
        if "alias" in kv:
            if kv["alias"] not in self.metrics:
                raise ConfigError(f'unable to find metric "{kv["alias"]}"')
            m.alias = self.metrics[kv["alias"]]
        if mtype == "alias" and m.alias is None:
            raise ConfigError(f'metric alias "{name}" requires a mapping !!!')

    def register_plugin_gauge(self, name: str, oid: str, read: Any) -> None:
        """A plugin's gauge (``cheaper_busyness``): plugins register theirs as they start,
        before the core metrics are set up, so they come first, in registration order."""
        m = _Metric(name, "gauge", "ptr", oid=oid)
        m.read = read
        items = list(self.metrics.items())
        items.insert(self._plugin_metrics, (name, m))
        self._plugin_metrics += 1
        self.metrics = dict(items)

    # -- values -------------------------------------------------------------------------
    def value(self, name: str) -> int:
        """The current value of metric ``name`` (0 if unknown), as ``metric_get``."""
        if not self.enabled:
            return 0
        m = self.metrics.get(name)
        return self._value(m) if m is not None else 0

    def _value(self, m: _Metric) -> int:
        if m.type == "alias" and m.alias is not None:
            return self._value(m.alias)
        if m.read is not None:
            return _i64(m.initial + m.read())
        if m.collector == "sum":
            return _i64(m.initial + sum(self._value(c) for c in m.children))
        if m.collector == "avg":
            vals = [self._value(c) for c in m.children]
            return _i64(m.initial + (sum(vals) // len(vals) if vals else 0))
        return m.value

    def write(self, op: str, name: str, value: int) -> bool:
        """``uwsgi_metric_<op>``: False where uWSGI returns -1."""
        if op == "div" and value == 0:
            return False
        if not self.enabled:
            return False
        m = self.metrics.get(name)
        if m is None or m.collector or m.read is not None or m.type == "alias":
            return False
        cur = m.value
        if op == "set":
            new = value
        elif op == "inc":
            new = cur + value
        elif op == "dec":
            new = cur - value
        elif op == "mul":
            new = cur * value
        elif op == "div":
            q = abs(cur) // abs(value)
            new = q if (cur < 0) == (value < 0) else -q
        elif op == "set_max":
            new = max(cur, value)
        else:  # set_min, with uWSGI's condition
            new = value if (value > m.initial) and value < cur else cur
        m.value = _i64(new)
        self.inst.record("metric.set", None, name=name, op=op, value=m.value)
        return True

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        funcs: dict[str, Any] = {}
        if self.snmp:
            funcs.update(self._snmp_functions())
        p_get = parser("s:metric_get")

        def metric_get(*args: Any, **kw: Any) -> int:
            no_kwargs("metric_get", kw)
            (name,) = p_get(args)
            return self.value(name)

        funcs["metric_get"] = metric_get
        for op in ("set", "inc", "dec", "mul", "div", "set_max", "set_min"):
            funcs[f"metric_{op}"] = self._writer(op)
        return funcs

    def _writer(self, op: str) -> Any:
        name = f"metric_{op}"
        p = parser(f"s|l:{name}")

        def fn(*args: Any, **kw: Any) -> bool | None:
            no_kwargs(name, kw)
            v = p(args)
            return True if self.write(op, v[0], v[1] if len(v) > 1 else 1) else None

        fn.__name__ = name
        return fn

    def _snmp_functions(self) -> dict[str, Any]:
        funcs: dict[str, Any] = {}
        slots = self.snmp_values
        kinds = {"counter32": 1, "counter64": 2, "gauge": 3}

        def setter(kind: str) -> Any:
            name = f"snmp_set_{kind}"
            p = parser(f"b{'K' if kind == 'counter64' else 'I'}:{name}")

            def fn(*args: Any, **kw: Any) -> bool | None:
                no_kwargs(name, kw)
                oid, val = p(args)
                if not 1 <= oid <= 100:
                    return None
                slots[oid - 1] = [kinds[kind], val & _U64]
                self.inst.record("snmp.set", None, oid=oid, value=val & _U64)
                return True

            fn.__name__ = name
            return fn

        def adder(kind: str, sign: int) -> Any:
            name = f"snmp_{'incr' if sign > 0 else 'decr'}_{kind}"
            # uWSGI's decr functions parse with the incr names (copy-paste in C)
            p2 = parser(f"bI:snmp_incr_{kind}")
            p1 = parser(f"b:snmp_incr_{kind}")

            def fn(*args: Any, **kw: Any) -> bool | None:
                no_kwargs(name, kw)
                try:
                    oid, val = p2(args)
                except Exception:  # noqa: BLE001 - uWSGI clears any error and retries
                    (oid,) = p1(args)
                    val = 1
                if not 1 <= oid <= 100:
                    return None
                slot = slots[oid - 1]
                slot[0] = kinds[kind]
                slot[1] = (slot[1] + sign * val) & _U64
                self.inst.record("snmp.set", None, oid=oid, value=slot[1])
                return True

            fn.__name__ = name
            return fn

        for kind in kinds:
            funcs[f"snmp_set_{kind}"] = setter(kind)
            funcs[f"snmp_incr_{kind}"] = adder(kind, 1)
            funcs[f"snmp_decr_{kind}"] = adder(kind, -1)
        p_comm = parser("s:snmp_set_community")

        def snmp_set_community(*args: Any, **kw: Any) -> bool:
            no_kwargs("snmp_set_community", kw)
            (text,) = p_comm(args)
            raw = text.encode()
            if len(raw) > 72:
                self.inst.log("*** warning the supplied SNMP community string will be "
                              "truncated to 72 chars ***")
                raw = raw[:72]
            self.snmp_community = raw
            return True

        funcs["snmp_set_community"] = snmp_set_community
        return funcs
