"""The stats server's document (``--stats``): what the master answers on that address.

What it models (``core/master_utils.c`` ``uwsgi_master_generate_stats``,
``core/stats.c`` ``uwsgi_stats_dump_vars``/``uwsgi_stats_dump_request`` of 2.0.30):
:func:`document` builds the document of an instance as plain data, with 2.0.30's keys
in its order; ``simuwsgi.protocol.encode_stats`` writes it byte for byte as uWSGI does
(``--stats-minified``; ``--stats-http`` puts the HTTP head first). ``Simulation.stats()``
returns it; ``simuwsgi serve`` and ``Cluster.expose(..., protocol="stats")`` answer a
connection with it (``simuwsgi.net._stats``).

* ``version``, ``listen_queue`` (and ``load``: 2.0.30 stores the backlog in both),
  ``listen_queue_errors`` (never counted in 2.0.30), ``signal_queue``, ``pid`` (the
  master's), ``uid``/``gid`` (the simulated machine's: 0 when it runs as root, else
  1000; the host's with ``machine="host"``), ``cwd``;
* ``locks``: ``user 0``..``user N`` (``--locks``), the master's table locks, ``thunder``,
  ``rpc``, the shared areas', ``snmp``, ``queue``, the caches' (``cache_NAME``), the
  ``metrics`` and the spoolers' (``spooler on DIR``), in uWSGI's creation order, each with
  the pid holding it (0: free; only the user locks are ever held in a simulation);
* ``caches`` (with their ``hits``/``miss`` counters), ``metrics`` (``--enable-metrics``,
  unless ``--stats-no-metrics``), ``sockets`` (the listen queue counts on the first);
* ``workers``: each slot's counters, ``status`` (``cheap``, ``pause``, ``sigN``,
  ``busy``, ``idle``), memory (``sim.set_rss``), ``apps`` and ``cores`` (unless
  ``--stats-no-cores``) with a busy core's request vars and ``request_start``;
* ``spoolers`` and ``crons`` (the command crons) when there are any; ``legions`` in a
  build with SSL (``ssl=True``) with a ``--legion`` (``subsystems.legion``). pyuwsgi is
  built without SSL: no ``legions`` key, no cron ``legion`` key (nor here with SSL).

Left out: ``daemons`` (``--attach-daemon`` is not simulated), the per-core counters of
static, routed and offloaded requests, write and read errors (always 0 here),
``last_modified_at`` (the cache's ``lastmod`` option).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..protocol import escape_json
from .banner import machine
from .workers import packet_vars

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker

__all__ = ["document", "enabled_line"]

#: ``UWSGI_METRIC_*``
_METRIC_TYPES = {"counter": 0, "gauge": 1, "absolute": 2, "alias": 3}
#: the socket options and the protocol name uWSGI gives their sockets
_PROTOS = {"socket": "uwsgi", "uwsgi-socket": "uwsgi", "http-socket": "http",
           "http11-socket": "http11", "https-socket": "https", "fastcgi-socket": "fastcgi",
           "scgi-socket": "scgi", "raw-socket": "raw", "suwsgi-socket": "suwsgi"}


def document(inst: Instance) -> dict[str, Any]:
    """The stats document of ``inst`` now (``uwsgi_master_generate_stats``)."""
    if not inst.has_master or inst.master is None:
        raise ConfigError("the stats server needs the master process (--master)")
    backlog = len(inst.listen_queue)
    uid = _uid(inst)
    doc: dict[str, Any] = {
        "version": "2.0.30", "listen_queue": backlog,
        "listen_queue_errors": 0,  # shared->backlog_errors: never counted in 2.0.30
        "signal_queue": 0, "load": backlog, "pid": inst.master.pid, "uid": uid, "gid": uid,
        "cwd": inst.master.cwd or str(inst.app.base_dir),
        "locks": [{name: pid} for name, pid in _locks(inst)],
    }
    caches = inst.subsystems.get("cache")
    if caches is not None and caches.caches:
        doc["caches"] = [_cache(c) for c in caches.caches]
    metrics = inst.subsystems.get("metrics")
    if metrics is not None and metrics.enabled and not inst.opts.flag("stats-no-metrics"):
        # an alias shows the oid of the metric it names (uWSGI remaps it)
        doc["metrics"] = {m.name: {"type": _METRIC_TYPES.get(m.type, 0),
                                   "oid": m.oid or (m.alias.oid if m.alias else ""),
                                   "value": metrics.value(m.name)}
                          for m in metrics.metrics.values()}
    doc["sockets"] = _sockets(inst, backlog)
    doc["workers"] = [_worker(inst, wid, inst.workers.get(wid))
                      for wid in range(1, inst.numproc + 1)]
    spooler = inst.subsystems.get("spooler")
    if spooler is not None and spooler.slots:
        doc["spoolers"] = [
            {"dir": slot.dir, "pid": slot.proc.pid if slot.proc is not None else 0,
             "tasks": slot.tasks,
             "respawns": slot.proc.respawn_count if slot.proc is not None else 0,
             "running": int(slot.running)} for slot in spooler.slots]
    cron = inst.subsystems.get("cron")
    if cron is not None and cron.command_crons:
        # a command runs from its firing to the master's next look (master_checks.c then
        # sets pid -1 and started_at 0); its pid when the simulation runs it
        # a build with SSL (master_utils.c's #ifdef UWSGI_SSL) names each one's legion
        ssl = getattr(inst, "ssl", False)
        doc["crons"] = [
            {"minute": c.minute, "hour": c.hour, "day": c.day, "month": c.month,
             "week": c.week, "command": escape_json(c.command or ""), "unique": int(c.unique),
             **({"legion": c.legion or ""} if ssl else {}),
             "pid": c.pid, "started_at": c.started_at} for c in cron.command_crons]
    legions = inst.subsystems.get("legion")
    if legions is not None and legions.legions:
        doc["legions"] = legions.stats()
    return doc


def enabled_line(inst: Instance) -> str:
    """The master's ``*** Stats server enabled on ADDR fd: N ***`` as its loop starts.

    N is the descriptor the stats socket gets: what 2.0.30 opened before it, as measured
    (one worker and one socket: 9; each further worker 2, plus 1 once there are several
    workers or any mule; the first mule 8 and each further one 4; caches 1 + 1 each;
    spoolers 3 + 2 each; each further socket 2): exact for one of these at a time; mixes
    measured up to 3 less than this sum (descriptors closed during startup are reused).
    """
    workers, sockets = inst.numproc, len(_sockets(inst, 0))
    mules = inst.subsystems.get("mules")
    nmules = len(mules.process_ids()) if mules is not None else 0
    caches = inst.subsystems.get("cache")
    ncaches = len(caches.caches) if caches is not None else 0
    spooler = inst.subsystems.get("spooler")
    nspoolers = len(spooler.slots) if spooler is not None else 0
    fd = 7 + 2 * workers + int(workers > 1 or nmules > 0) + 2 * max(0, sockets - 1)
    fd += (4 + 4 * nmules if nmules else 0) + (1 + ncaches if ncaches else 0)
    fd += 3 + 2 * nspoolers if nspoolers else 0
    return f"*** Stats server enabled on {inst.opts.str('stats')} fd: {fd} ***"


def _uid(inst: Instance) -> int:
    if inst.machine == "host":
        return os.getuid()
    return 0 if machine(inst)["root"] == "True" else 1000


def _locks(inst: Instance) -> list[tuple[str, int]]:
    """The registered locks, in the order 2.0.30 creates them."""
    locks = inst.subsystems.get("locks")
    out = [(f"user {lock.num}", lock.holder.pid if lock.holder is not None
            and lock.holder.alive else 0) for lock in (locks.locks if locks else [])]
    if inst.has_master:
        out += [(name, 0) for name in ("signal", "filemon", "timer", "rbtimer", "cron")]
    if inst.opts.flag("thunder-lock"):
        out.append(("thunder", 0))
    out.append(("rpc", 0))
    areas = inst.subsystems.get("sharedarea")
    out += [(f"sharedarea{i}", 0) for i in range(len(getattr(areas, "areas", ()) or ()))]
    out.append(("snmp", 0))
    if inst.subsystems.get("queue") is not None:
        out.append(("queue", 0))
    caches = inst.subsystems.get("cache")
    out += [(f"cache_{c.name}", 0) for c in (caches.caches if caches else [])]
    metrics = inst.subsystems.get("metrics")
    if metrics is not None and metrics.enabled:  # uwsgi_setup_metrics, then the spoolers'
        out.append(("metrics", 0))
    spooler = inst.subsystems.get("spooler")
    out += [(f"spooler on {slot.dir}", 0) for slot in (spooler.slots if spooler else [])]
    return out


def _cache(c: Any) -> dict[str, Any]:
    return {"name": c.name, "hash": "djb33x", "hashsize": c.hashsize, "keysize": c.keysize,
            "max_items": c.max_items, "blocks": c.blocks, "blocksize": c.blocksize,
            "items": len(c.items), "hits": c.hits, "miss": c.miss, "full": c.full,
            "last_modified_at": 0}


def _sockets(inst: Instance, backlog: int) -> list[dict[str, Any]]:
    out = []
    for option, proto in _PROTOS.items():
        for name in inst.opts.strings(option):
            out.append({"name": name, "proto": proto, "queue": 0 if out else backlog,
                        "max_queue": inst.listen, "shared": 0, "can_offload": 0})
    return out


def _status(w: Worker | None) -> str:
    if w is None or w.cheaped:
        return "cheap"
    busy = w.busy or w.in_handler >= 0
    if w.paused and not busy:
        return "pause"
    if w.in_handler >= 0:
        return f"sig{w.in_handler}"
    return "busy" if busy else "idle"


def _worker(inst: Instance, wid: int, w: Worker | None) -> dict[str, Any]:
    cheap_at_start = w is None and inst.subsystems.get("cheaper") is not None
    alive = w is not None and w.alive
    entry: dict[str, Any] = {
        "id": wid, "pid": w.pid if alive else 0,  # type: ignore[union-attr]
        "accepting": int(alive and w.accepting),  # type: ignore[union-attr]
        "requests": w.requests if w else 0, "delta_requests": w.delta_requests if w else 0,
        "exceptions": w.exceptions if w else 0,
        "harakiri_count": w.harakiri_count if w else 0,
        "signals": w.signals if w else 0,
        "signal_queue": len(w.signal_queue) if w else 0,
        "status": _status(w) if w is not None or cheap_at_start else "idle",
        "rss": w.rss_size if w else 0, "vsz": w.vsz_size if w else 0,
        "running_time": w.running_time if w else 0, "last_spawn": w.last_spawn if w else 0,
        # the slot's spawns (uwsgi.workers() shows one less)
        "respawn_count": w.respawn_count + 1 if w else 0, "tx": w.tx if w else 0,
        "avg_rt": w.avg_rt if w else 0,
        "apps": _apps(inst, w),
    }
    if not inst.opts.flag("stats-no-cores"):
        entry["cores"] = [_core(inst, w, j) for j in range(inst.cores)]
    return entry


def _apps(inst: Instance, w: Worker | None) -> list[dict[str, Any]]:
    if w is None:
        return []  # never forked: its app table was never copied from the master's
    # an app counts a request as it starts it (the worker and its core as they end it)
    busy = len(w.in_flight()) if w.alive else 0
    return [{"id": app_id, "modifier1": 0, "mountpoint": inst.app.mountpoints.get(app_id, ""),
             "startup_time": 0,
             "requests": w.app_requests.get(app_id, 0) + (busy if app_id == 0 else 0),
             "exceptions": w.app_exceptions.get(app_id, 0), "chdir": ""}
            for app_id in (w.apps or inst.app.apps)]


def _core(inst: Instance, w: Worker | None, core: int) -> dict[str, Any]:
    thread = w.cores[core] if w is not None and w.alive and core < len(w.cores) else None
    request = thread.request if thread is not None else None
    counts = w.core_counts if w is not None else []
    entry: dict[str, Any] = {
        "id": core, "requests": counts[core] if core < len(counts) else 0,
        "static_requests": 0,
        "routed_requests": w.core_routed[core] if w is not None and core < len(w.core_routed)
        else 0,
        "offloaded_requests": 0,
        "write_errors": 0, "read_errors": 0, "in_request": int(request is not None),
        "vars": [], "req_info": {},
    }
    if request is not None:
        # the packet's vars: the one a node received (its HTTP parser's, a web server's),
        # else the request's (as the log line counts them)
        wire = request.net
        found = wire.text_vars() if wire is not None and wire.vars else \
            packet_vars(inst, request)
        entry["vars"] = [escape_json(f"{k}={v}") for k, v in found.items()]
        entry["vars"].append("")
        entry["req_info"] = {
            "request_start": int(inst.clock.wall_offset + request.started)}
    return entry
