"""``Cluster``: several uWSGI nodes in one simulation, on one clock and one network.

A cluster owns what a :class:`~simuwsgi.Simulation` owns once for all its nodes: one
kernel (virtual time, the seeded RNG), one time patch, one import ledger and one
trace (each record names its node; ``cluster.digest()`` covers them all). Each node
(:class:`Node`, the ``Simulation`` driving API: ``get/request/submit/signal/kill/
reload/touch/log/trace/uwsgi/globals``) is an :class:`~simuwsgi.server.master.Instance` of
its own: host name, pids, process table, subsystems, app modules, and a wall clock
that the scenario can skew (``cluster.skew("b", 30)``).

How several instances share one interpreter:

* every virtual process belongs to its node (``Process.domain``); when the kernel is
  about to run a process of another node than the last one, ``_enter_node`` swaps what
  the app sees: ``sys.modules['uwsgi']`` (the node's facade), the node's app modules
  (each node imports its own: a module of the app is never shared between nodes) and
  the node's virtual-fork hook (``AppLoader.switch``);
* the time patch reads the running node's clock (:class:`_ClusterClock`), so
  ``time.time()`` in a node's code includes its skew; the test's code (no process
  running) sees the cluster's clock;
* addresses in the nodes' options are virtual: nothing binds on the host; the nodes
  talk through ``cluster.net`` (:mod:`simuwsgi.network`).

Real nodes (``add_real``) are real uWSGI servers on loopback whose datagrams and
connections cross the virtual network both ways (``simuwsgi.cluster_real``). The
nodes' app code connects to other nodes with its own sockets over the virtual network
(``simuwsgi.network._appsockets``).
Left out: ``mode='fork'`` nodes (``add`` refuses them).
"""

from __future__ import annotations

import functools
import os
import sys
from datetime import datetime, timezone
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ._errors import ConfigError, NotSimulatedError, SimulationError
from ._core.clock import RealClock, TimePatch, VirtualClock, parse_start
from .server.config import parse_options
from .server.containment import Containment, Watchdog
from ._core.isolation import ImportLedger
from ._core.kernel import Kernel
from .server.master import Instance
from .server.workers import Request
from .network import Network
from .network._appsockets import NodeSockets, VirtualSocket, driver_block
from .network._legacy import configure_from_cluster
from .subsystems.legacy import apply_legacy_options, split_legacy_options
from .uwsgidecorators import install_finder, remove_finder
from .simulation import DEFAULT_PATIENCE, Simulation
from ._core.trace import Trace
from .server.workers import Response

__all__ = ["Cluster", "Node"]


def _http_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The bytes of an HTTP/1.1 request (``Connection: close``: one request)."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if body and not any(k.lower() == "content-length" for k, _v in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _uwsgi_request(method: str, path: str, headers: list[tuple[str, str]], address: str,
                   remote_addr: str, body_length: int = 0) -> Any:
    """The uwsgi packet a web server sends for the request (nginx's ``uwsgi_params``)."""
    from .protocol import Request

    path_info, _, query = path.partition("?")
    length = str(body_length) if body_length else ""
    pairs = [("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ""),
             ("CONTENT_LENGTH", length), ("REQUEST_URI", path), ("PATH_INFO", path_info),
             ("DOCUMENT_ROOT", ""), ("SERVER_PROTOCOL", "HTTP/1.1"),
             ("REMOTE_ADDR", remote_addr), ("REMOTE_PORT", "0"),
             ("SERVER_PORT", address.rpartition(":")[2]),
             ("SERVER_NAME", address.rpartition(":")[0])]
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            pairs = [(k, v) for k, v in pairs if k != key]
        else:
            key = "HTTP_" + key
        pairs.append((key, value))
    return Request(vars=tuple((k.encode("latin-1"), str(v).encode("latin-1"))
                              for k, v in pairs))


class _ClusterClock(VirtualClock):
    """The clock the time patch shows: the wall clock of the node whose process runs
    (its skew included), the cluster's own when none does."""

    @property  # type: ignore[override]
    def wall_offset(self) -> float:
        proc = self.kernel.current
        node = getattr(proc, "domain", None)
        return node.clock.wall_offset if node is not None else self._offset

    @wall_offset.setter
    def wall_offset(self, value: float) -> None:
        self._offset = value


class _NodeContainment(Containment):
    """The process-level patches for one node: the nodes share one kernel, so the
    process running is this node's only if it belongs to its instance."""

    def running(self) -> Any:
        proc = super().running()
        return proc if proc is not None and proc.inst is self.inst else None


class Node(Simulation):
    """One node of a :class:`Cluster`, driven like a ``Simulation`` (which see).

    Made by ``cluster.add``; its time, trace and lifecycle are the cluster's:
    ``node.advance(5)`` runs every node for 5 virtual seconds, ``node.close()`` closes
    the cluster.
    """

    def __init__(self, cluster: Cluster, name: str, options: Any, *, address: str,
                 hostname: str, app_dir: str | Path | None, vfork: bool,
                 cron_commands: bool, legacy: bool, pid_base: int,
                 allow_no_app: bool, ssl: bool) -> None:
        # Simulation.__init__ makes a kernel, clock, patch and ledger of its own: a
        # node shares the cluster's instead.
        self.cluster = cluster
        self.name = name
        self.address = address
        self.mode = "sim"
        self.seed = cluster.seed
        options, legacy_values = split_legacy_options(options) if legacy else (options, {})
        self.opts = parse_options(options, base_dir=Path(app_dir) if app_dir else None,
                                  ssl=ssl)
        if app_dir is not None:
            self.opts.base_dir = Path(app_dir)
        self.kernel = cluster.kernel
        self.clock = VirtualClock(self.kernel, cluster.clock.wall_offset, cluster.clock.tz)
        self.clock.park = cluster._sleep
        self.inst = Instance(self.opts, self.kernel, self.clock, node=name,
                             hostname=hostname, vfork=vfork, pid_base=pid_base)
        self.inst.trace.tee(cluster.trace)
        self.inst.network = "virtual"  # read by the net subsystem (simuwsgi.server.subsystems)
        self.inst.ssl = ssl  # read by simuwsgi.subsystems.legion
        self.inst.cluster_network = cluster.net  # type: ignore[attr-defined]
        self.inst.cron_commands = cron_commands
        self.inst.legacy = legacy
        apply_legacy_options(self.inst, legacy_values)  # 1.4's --cluster, --erlang
        self._patch = cluster._patch
        self._imports = cluster._imports
        # os._exit/os.kill/atexit/signal.signal act on the node's own processes; the
        # stall watchdog is not armed for a cluster's nodes
        self.inst.stall_timeout = None
        self._contain = _NodeContainment(self.inst)
        self._contain.sockets = NodeSockets(cluster.net, name, cluster.host_addresses)
        self._watchdog = Watchdog(self.inst, None)
        self._decorators = "auto"
        self.allow_no_app = allow_no_app
        self.started = False
        self.closed = False
        self._request_ids = 0
        #: This node's entries of ``sys.modules`` while another node runs.
        self._modules: dict[str, Any] = {}
        self._app_names: list[str] = []
        self._names_from = -1

    # -- lifecycle: the cluster's ---------------------------------------------------------
    def start(self) -> Node:
        self.cluster.start()
        return self

    def close(self) -> None:
        self.cluster.close()

    def _boot(self) -> None:
        """Boot this node (the cluster's patch and ledger are in)."""
        self.kernel.switch_domain(self.inst)
        for name in ("uwsgi", "uwsgidecorators"):
            sys.modules.pop(name, None)  # this node's own, bound to its facade
        self.started = True
        self._contain.install()
        self.inst.on_stop.append(self._settle)
        with self._patch.running():
            if configure_from_cluster(self.inst):  # 1.4: a node given only --cluster
                self.opts = self.inst.opts
                self.kernel.switch_domain(self.inst)  # the others ran meanwhile
                self.kernel.context_hook = self.inst.app.switch  # its new app loader
            self.inst.boot()
        self._check_app_loaded()

    def _run(self, body: Callable[[], Any]) -> None:
        self.cluster._run(body)

    def advance(self, seconds: float) -> None:
        if self.cluster.real_nodes:  # paced by the real clock (simuwsgi.cluster_real)
            self._ensure_started()
            self.cluster.advance(seconds)
        else:
            super().advance(seconds)

    def wait(self, requests: Any, *, timeout: float | None = None) -> None:
        """As ``Simulation.wait``; with a real node, paced by the real clock (a request
        still in flight after ``timeout``, default the patience, is left so)."""
        if not self.cluster.real_nodes:
            super().wait(requests, timeout=timeout)
            return
        pending = [requests] if isinstance(requests, Request) else list(requests)
        limit = self.kernel.now + (timeout if timeout is not None else DEFAULT_PATIENCE)
        self.cluster._run_to(limit, done=lambda: all(r.done for r in pending))

    def _settle(self) -> None:
        self.kernel.apply_cwd(None)

    # -- what the kernel swaps when it runs another node ------------------------------------
    def _app_module_names(self) -> list[str]:
        """The names in ``sys.modules`` that are this node's own (its app's modules,
        ``uwsgi``, ``uwsgidecorators``); recomputed when its app imported more."""
        app = self.inst.app
        if app.imports_made != self._names_from:
            self._names_from = app.imports_made
            self._app_names = ["uwsgi", *app.own_module_names()]
        return self._app_names

    def _leave(self) -> None:
        modules = sys.modules
        own = self._modules
        for name in self._app_module_names():
            own[name] = modules.pop(name, None)

    def _enter(self) -> None:
        modules = sys.modules
        for name, module in self._modules.items():
            if module is None:
                modules.pop(name, None)
            else:
                modules[name] = module
        if self.inst.facade is not None:
            modules["uwsgi"] = self.inst.facade

    @property
    def trace(self) -> Trace:
        """This node's records only (``cluster.trace`` has every node's)."""
        return self.inst.trace

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.address} t={self.kernel.now:.3f}>"


def _spool_dirs(node: Node) -> set[str]:
    """The spool directories node's spooler processes scan (real paths)."""
    return {os.path.realpath(node.opts.path(value)) for value in node.opts.strings("spooler")}


class Cluster:
    """Named uWSGI nodes on one virtual clock and one virtual network.

    ``seed``, ``start`` and ``tz`` are those of :class:`~simuwsgi.Simulation`, for
    every node; ``app_dir`` is where the nodes' relative paths are resolved unless
    ``add`` gives one; ``ssl=True`` makes every node a build with SSL (Legion). Add
    nodes with :meth:`add`, then use the cluster (or a node) as a context manager;
    ``cluster.net`` controls the links between nodes. The nodes' app code reaches other
    nodes with its own sockets (``socket.create_connection``, ``urllib``) over the
    virtual network; ``host_addresses`` (``"db.internal"``, ``"10.1.2.3:5432"``) are
    those it may reach on the host instead, every other address is refused
    (``simuwsgi.network._appsockets``).
    """

    def __init__(self, *, seed: int = 0, start: Any = None, tz: str | None = None,
                 app_dir: str | Path | None = None, ssl: bool = False,
                 host_addresses: Iterable[str] = ()) -> None:
        # the remote calls reuse the real-socket client's code, which imports trio:
        # before any clock patch, or trio would keep the virtual clock (see simuwsgi.server.subsystems)
        from .network import _remote  # noqa: F401

        self.seed = seed
        self.app_dir = app_dir
        self.ssl = ssl
        if isinstance(host_addresses, str):
            raise TypeError("host_addresses is a list of 'host' or 'host:port' strings")
        #: What the nodes' app code may connect to on the host (``network._appsockets``).
        self.host_addresses = frozenset(host_addresses)
        self.kernel = Kernel(seed)
        self.clock = _ClusterClock(self.kernel, parse_start(start, tz), tz)
        self._patch = TimePatch(self.clock, self._sleep)
        self._imports = ImportLedger()
        self.trace = Trace("cluster")
        self.nodes: dict[str, Node] = {}
        #: Real uWSGI nodes (``add_real``): with one, the cluster runs on the real clock.
        self.real_nodes: dict[str, Any] = {}
        self._real_zero = 0.0
        #: Answers of real nodes from helper threads, and the socket pair that wakes the
        #: pacing loop for them (``simuwsgi.cluster_real``), made with the first one.
        self._real_done: Any = None
        self._waker: Any = None
        self._exposed: dict[str, tuple[str, str]] = {}
        self.net = Network(self.kernel, self._record)
        self.kernel.domain_hook = self._enter_node
        self.started = False
        self.closed = False

    def add(self, name: str, options: Any, *, address: str | None = None,
            hostname: str | None = None, app_dir: str | Path | None = None,
            vfork: bool = True, cron_commands: bool = False, legacy: bool = False,
            pid_base: int = 1000, allow_no_app: bool = False,
            ssl: bool | None = None, mode: str = "sim") -> Node:
        """A new node ``name`` running ``options`` (as ``Simulation`` takes them).

        ``address`` is its IP on the virtual network (default ``10.0.0.N``); its
        sockets are the ports of ``--socket``/``--http-socket`` on that address, also
        reachable by the node's name (``uwsgi.rpc("b:3031", ...)``). ``hostname``
        (default: the name) is what ``uwsgi.hostname`` and spool files show. Each node
        has its own pid space (``pid_base``). A node added to a running cluster starts
        at once. A node whose app does not load stops the start with ``AppLoadError``
        unless ``allow_no_app=True`` (see ``Simulation``). ``ssl`` (default: the
        cluster's) simulates a build with SSL: Legion (``simuwsgi.subsystems.legion``).
        ``mode`` is ``"sim"``: a node's processes are virtual ones (``mode="fork"``, a
        ``Simulation``'s forked OS processes, is not available for a cluster's nodes).
        """
        if mode != "sim":
            raise NotSimulatedError(
                f"mode={mode!r} for a cluster node: the nodes share one kernel and one "
                f"interpreter and run as virtual processes (mode='sim'); a fork-mode "
                f"Simulation runs alone")
        self._check_new_name(name)
        address = address or f"10.0.0.{len(self.nodes) + len(self.real_nodes) + 1}"
        node = Node(self, name, options, address=address, hostname=hostname or name,
                    app_dir=app_dir if app_dir is not None else self.app_dir, vfork=vfork,
                    cron_commands=cron_commands, legacy=legacy, pid_base=pid_base,
                    allow_no_app=allow_no_app, ssl=self.ssl if ssl is None else ssl)
        self.net.attach(name, address, node.inst, node.submit)
        self.nodes[name] = node
        self._record("node.add", name=name, address=address)
        if self.started:
            self._start_node(node)
        return node

    def add_real(self, name: str, options: Any, *, address: str | None = None,
                 binary: str | None = None, app_dir: str | Path | None = None,
                 allow_no_app: bool = True) -> Any:
        """A real uWSGI node ``name`` running ``options`` on loopback (``binary``: default
        pyuwsgi's; Legion needs one built with SSL, ``simuwsgi.modes.real._ssl_build``),
        with the virtual IP ``address``. Its UDP traffic (Legion, cache replication)
        and its TCP connections (its sockets; the virtual peers its options name,
        through bridges: :meth:`real_address`) cross the virtual links; from then on
        the cluster runs paced by the real clock (see ``simuwsgi.cluster_real``).
        Returns its handle (``get``, ``log``, ``stop``, ``kill``, ``real``)."""
        import _queue  # the host's own, whatever a simulation patched
        import socket

        from .cluster_real import RealNode

        self._check_new_name(name)
        if self._waker is None:
            self._real_done = _queue.SimpleQueue()
            self._waker = socket.socketpair()
            for end in self._waker:
                end.setblocking(False)
        address = address or f"10.0.0.{len(self.nodes) + len(self.real_nodes) + 1}"
        base = app_dir if app_dir is not None else self.app_dir
        node = RealNode(self, name, list(options), address=address, binary=binary,
                        app_dir=Path(base) if base is not None else None,
                        allow_no_app=allow_no_app)
        self.net.attach(name, address, node.inst, lambda *a, **k: None)
        self.real_nodes[name] = node
        self._record("node.add_real", name=name, address=address)
        if self.started:
            node.start()
        return node

    def real_address(self, address: str, *, via: str | None = None) -> str:
        """Where the real node ``via`` (default: the only one) reaches ``address`` (a
        node's ``name:port``, ``ip:port`` or ``hostname:port``; a bare node name: its
        first TCP socket): a ``127.0.0.1:PORT`` whose connections cross the virtual
        link from ``via`` to that address (``simuwsgi.network._bridge``). For the real
        node's app code, which uWSGI cannot rewrite: pass it as an rpc argument, or use
        ``--set``/``--set-placeholder``/``--env KEY=a:3031`` in the real node's
        options, whose node addresses are rewritten to this."""
        if via is None:
            if len(self.real_nodes) != 1:
                raise ValueError(f"real_address: say which real node connects (via=...; "
                                 f"there are: {', '.join(self.real_nodes) or 'none'})")
            via = next(iter(self.real_nodes))
        if via not in self.real_nodes:
            raise ValueError(f"real_address: {via!r} is not a real node (there are: "
                             f"{', '.join(self.real_nodes) or 'none'})")
        if ":" not in address:
            self[address]  # KeyError naming the nodes
            ports = [p for p in self.net.nodes[address].ports if isinstance(p, int)]
            if not ports:
                raise ValueError(f"real_address: node {address!r} has no TCP socket")
            address = f"{address}:{ports[0]}"
        return self.real_nodes[via].bridge(address)  # type: ignore[no-any-return]

    def _wake(self) -> None:
        """A helper thread has an answer for the pacing loop."""
        try:
            self._waker[1].send(b"!")
        except OSError:
            pass

    def _check_new_name(self, name: str) -> None:
        if self.closed:
            raise SimulationError("this cluster is closed")
        if not isinstance(name, str) or not name or ":" in name or "@" in name:
            raise ValueError(f"a node name is a non-empty string without ':' or '@', "
                             f"not {name!r}")
        if name in self.nodes or name in self.real_nodes:
            raise ValueError(f"there is already a node named {name!r}")

    def __getitem__(self, name: str) -> Node:
        if name in self.real_nodes:
            return self.real_nodes[name]  # type: ignore[no-any-return]
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} (there are: "
                           f"{', '.join(self.nodes) or 'none'})") from None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Cluster:
        """Boot every node, in the order they were added."""
        if self.started:
            return self
        if not self.nodes:
            raise SimulationError("a cluster needs a node: cluster.add(name, options)")
        self.started = True
        try:
            if self.real_nodes:
                # real nodes check each other's clocks: the cluster's is the real one
                offset = RealClock.time() - self.kernel.now
                self.clock.wall_offset = offset
                for node in self.nodes.values():
                    node.clock.wall_offset = offset
            self._imports.begin()
            self._patch.install()
            self._finder = install_finder("auto")  # (see Simulation's decorators)
            for node in self.nodes.values():
                self._start_node(node)
            for real in self.real_nodes.values():
                real.start()
            self._real_zero = RealClock.monotonic() - self.kernel.now
        except BaseException:
            self.close()
            raise
        return self

    def _start_node(self, node: Node) -> None:
        for other in self.nodes.values():
            shared = _spool_dirs(node) & _spool_dirs(other) if other.started else set()
            if shared:
                raise ConfigError(
                    f"node {node.name!r}: spooler directory {min(shared)} is also used by "
                    f"node {other.name!r}; hosts do not share a local directory: give "
                    f"each node its own --spooler")
        self._imports.enter()
        node._boot()
        self._imports.check_stale()

    def close(self) -> None:
        """Stop every node and take every patch out. Idempotent."""
        if self.closed:
            return
        self.closed = True
        nodes = [n for n in self.nodes.values() if n.started]
        for real in self.real_nodes.values():
            real.close()
        for end in self._waker or ():
            end.close()
        try:
            if self.started:
                self._imports.enter()
            for node in nodes:
                node.closed = True
                if not node.inst.stopped:
                    node.inst.stopped = True
                    for sub in node.inst.subsystems.values():
                        hook = getattr(sub, "close", None)
                        if hook is not None:
                            hook()
            with self._patch.running():
                self.kernel.close()
        finally:
            self.kernel.switch_domain(None)  # the running node's modules saved with it
            self.kernel.domain_hook = None
            for node in reversed(nodes):
                node._enter()
                node.inst.app.restore()
                node._contain.uninstall()
            self._patch.uninstall()
            remove_finder(getattr(self, "_finder", None))
            self._imports.close()
            for node in nodes:
                # (a node refused at start has no facade)
                if node.inst.facade is not None and sys.modules.get("uwsgi") is node.inst.facade:
                    del sys.modules["uwsgi"]

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _ensure_started(self) -> None:
        if self.closed:
            raise SimulationError("this cluster is closed")
        self.start()

    # -- switching between nodes --------------------------------------------------------------
    def _enter_node(self, current: Instance | None, incoming: Instance | None) -> None:
        """Show ``incoming``'s modules and ``uwsgi`` (the kernel's ``domain_hook``)."""
        if current is not None:
            self.nodes[current.node]._leave()
        if incoming is None:
            self.kernel.context_hook = None
            return
        self.nodes[incoming.node]._enter()
        self.kernel.context_hook = incoming.app.switch
        # the node's views show the image of its process that ran last
        self.kernel.adopt_context(incoming.app.installed)

    # -- time ------------------------------------------------------------------------
    #: What runs the nodes (the ``mode`` of a ``Simulation``): virtual processes only.
    mode = "sim"

    @property
    def now(self) -> float:
        """Virtual seconds since the cluster started."""
        return self.kernel.now

    @property
    def datetime(self) -> datetime:
        """The cluster's virtual wall-clock time, as an aware datetime in its zone."""
        from zoneinfo import ZoneInfo

        return datetime.fromtimestamp(self.clock._offset + self.kernel.now,
                                      timezone.utc).astimezone(ZoneInfo(self.clock.tz))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass on every node (real seconds too, with a
        real node)."""
        self._ensure_started()
        self._run_to(self.kernel.now + seconds)

    def run_until(self, when: float) -> None:
        """Run until ``when`` virtual seconds since the start."""
        self._ensure_started()
        if when < self.kernel.now:
            raise ValueError(f"cannot run back in time: {when!r} is before now")
        self._run_to(float(when))

    def _run_to(self, when: float, done: Callable[[], bool] | None = None) -> None:
        """Run until ``when`` (with a real node: or until ``done()``; a virtual run
        stops earlier when an event sets ``kernel.stopping``)."""
        if self.real_nodes:
            from .cluster_real import run_paced

            run_paced(self, when, done)
        else:
            self._run(lambda: self.kernel.run_until(when))

    def step(self) -> bool:
        """Run the next event only. False if nothing is scheduled."""
        self._ensure_started()
        ran: list[bool] = []
        self._run(lambda: ran.append(self.kernel.step()))
        return ran[0]

    def at(self, when: float, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Do ``action(*args, **kwargs)`` at virtual time ``when`` (seconds since the
        start) while the cluster runs: ``cluster.at(60, cluster.net.partition, ["a"],
        ["b"])``, ``cluster.at(90, cluster.skew, "b", 30)``."""
        if when < self.kernel.now:
            raise ValueError(f"cannot schedule in the past: {when!r} is before now "
                             f"({self.kernel.now:g})")
        self.kernel.at(when, functools.partial(action, *args, **kwargs))

    def apply(self, plan: Any) -> None:
        """Apply a fault plan (``simuwsgi.faults``): network faults to ``cluster.net``,
        the others on the node each names with ``node=`` (required when there are
        several nodes); timed faults at their virtual time, the others when their
        trigger fires on their node."""
        from .faults import FaultPlan, Injector, NetworkFault

        by_node: dict[str, list[Any]] = {}
        for fault in FaultPlan.coerce(plan):
            name = fault.node
            if name is None:
                if not isinstance(fault, NetworkFault) and len(self.nodes) > 1:
                    raise ValueError(f"{fault!r}: in a cluster, say which node it happens "
                                     f"on (node=...; there are: {', '.join(self.nodes)})")
                name = next(iter(self.nodes))
            by_node.setdefault(self[name].name, []).append(fault)
        for name, faults in by_node.items():
            node = self.nodes[name]
            injector = node.inst.faults or Injector(node, self.net)
            injector.schedule(FaultPlan(*faults))

    def kill(self, name: str) -> None:
        """``kill -9`` every process of node ``name`` at once (its master too): nothing
        is logged or unsubscribed, requests in flight lose their connection, and its
        ports refuse connections from now on (the host stays up)."""
        node = self[name]
        self._ensure_started()
        self._record("node.kill", name=name)
        self._run(lambda: node.inst.shutdown(signalled=False, killed=True))

    def skew(self, name: str, seconds: float) -> None:
        """Set node ``name``'s wall clock ``seconds`` ahead of the cluster's (behind if
        negative), as an NTP step on that host would: its cron re-plans, its monotonic
        clock and timers do not move."""
        node = self[name]
        delta = self.clock._offset + seconds - node.clock.wall_offset
        self._record("clock.skew", name=name, seconds=seconds)
        node.inst.record("clock.step", node.inst.master, delta=delta)
        node.clock.step(delta)

    def _run(self, body: Callable[[], Any]) -> None:
        for node in self.nodes.values():
            filemon = node.inst.subsystems.get("filemon") if node.started else None
            if filemon is not None:
                filemon.look_at_the_filesystem()
        try:
            self._imports.enter()
            with self._patch.running():
                body()
        finally:
            self.kernel.apply_cwd(None)

    def _sleep(self, seconds: float) -> None:
        """``time.sleep`` inside a virtual process: park it for ``seconds``."""
        kernel = self.kernel
        kernel.wake(kernel.current, None, max(0.0, float(seconds)))
        kernel.park(f"sleep({seconds})")

    # -- real sockets ----------------------------------------------------------------------
    def expose(self, name: str, address: str, *, protocol: str = "uwsgi") -> None:
        """Let real clients reach node ``name`` on the real ``address``
        (``"127.0.0.1:3031"``, port 0: any free port) while :meth:`serve` runs;
        ``protocol`` is ``"uwsgi"`` (``--socket``), ``"http"`` (``--http-socket``) or
        ``"stats"`` (the node's ``--stats`` server: each connection reads its document)."""
        self[name]
        if protocol not in ("uwsgi", "http", "stats"):
            raise ValueError(f"protocol must be 'uwsgi', 'http' or 'stats', not {protocol!r}")
        self._exposed[name] = (address, protocol)
        self._record("net.expose", name=name, address=address, protocol=protocol)

    def serve(self, *, duration: float | None = None,
              client: Callable[[dict[str, str]], Any] | None = None) -> Any:
        """Serve the exposed nodes on real sockets, the cluster paced by the real clock,
        in this thread (see ``simuwsgi.network._expose``): for ``duration`` real
        seconds, or until ``client(addresses)`` returns (it runs in a helper thread once
        every socket listens; ``addresses`` maps node names to the bound addresses);
        returns what ``client`` returned."""
        import trio

        from .network._expose import serve_cluster

        if not self._exposed:
            raise SimulationError("nothing to serve: cluster.expose(name, '127.0.0.1:PORT')")
        if self.real_nodes:
            raise SimulationError(
                "cluster.serve() cannot run a cluster with real nodes (they pace it): "
                "real clients reach a virtual node at cluster.real_address(name) while "
                "the cluster advances")
        self._ensure_started()
        return trio.run(functools.partial(serve_cluster, self, dict(self._exposed),
                                          duration=duration, client=client))

    # -- a client on a node's host (``uwsgi --ping``, a script) -------------------------------
    def exchange(self, address: str, request: Any, body: bytes = b"", *,
                 via: str | None = None, timeout: float = 4.0) -> Any:
        """Send one request (a :mod:`simuwsgi.protocol` event) to ``address`` from a
        client running on node ``via``'s host (default: the addressed node's own), run
        the cluster until the reply, and return it (``simuwsgi.net.Reply``). Raises
        ``OSError`` when the node cannot be reached, as the real client does."""
        from .network._remote import Exchange

        self._ensure_started()
        src = self[via].name if via is not None else self._host_of(address)
        box: list[tuple[bool, Any]] = []
        kernel = self.kernel

        def done(ok: bool, value: Any) -> None:
            box.append((ok, value))
            kernel.stopping = True

        Exchange(self.net, src, address, request, body, timeout, done)
        while not box:
            self._run_to(kernel.now + DEFAULT_PATIENCE, done=lambda: bool(box))
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def connect(self, address: str, *, via: str | None = None,
                timeout: float | None = None) -> VirtualSocket:
        """A TCP connection to ``address`` from a client on node ``via``'s host (default:
        the addressed node's own): a socket (``sendall``, ``recv``, ``shutdown``,
        ``close``, ``makefile``) whose waits run the cluster, each at most ``timeout``
        virtual seconds (None: the patience). For what a real client does at the
        edges: a request cut short, a half-closed connection
        (``simuwsgi.network._appsockets``)."""
        self._ensure_started()
        src = self[via].name if via is not None else self._host_of(address)
        host, _sep, port = address.rpartition(":")
        block = driver_block(self.kernel, self._run_to, DEFAULT_PATIENCE)
        return VirtualSocket(self.net, src, (host, int(port)), timeout, block)

    def request(self, address: str, method: str = "GET", path: str = "/", *,
                headers: Any = None, body: bytes = b"", via: str | None = None,
                timeout: float = 300.0) -> Response:
        """A web client's request to ``address`` (``"10.0.0.1:8080"``, ``"router:8080"``)
        from node ``via``'s host (default: the addressed node's own), the cluster run
        until the reply. An HTTP port (``--http-socket``, an ``--http`` router) gets the
        HTTP request; a uwsgi port (``--socket``, a ``--fastrouter``) gets the uwsgi
        packet a web server would send (``uwsgi_params``). ``headers`` (a dict or pairs)
        default to ``Host``: the address's host. Returns a ``Response``: ``status`` None
        when the connection closed with no reply or could not be made (``reason``
        says which)."""
        from .protocol import HttpResponse

        self._ensure_started()
        src = self[via].name if via is not None else self._host_of(address)
        pairs = list(headers.items() if isinstance(headers, dict) else headers or [])
        if not any(k.lower() == "host" for k, _v in pairs):
            pairs.insert(0, ("Host", address.rpartition(":")[0]))
        try:
            node, port = self.net.resolve(src, address)
        except OSError as exc:
            return Response(status=None, reason=f"{type(exc).__name__}: {exc}")
        speaks_http = node is not None and node.ports.get(port) in ("http", "http-router")
        message = (_http_request(method, path, pairs, body) if speaks_http
                   else _uwsgi_request(method, path, pairs, address, self.net.nodes[src].host,
                                       len(body)))
        started = self.kernel.now
        try:
            reply = self.exchange(address, message, body, via=src, timeout=timeout)
        except OSError as exc:
            return Response(status=None, reason=f"{type(exc).__name__}: {exc}",
                            started=started, finished=self.kernel.now)
        if reply.no_reply:
            return Response(status=None, reason="connection closed: no reply",
                            started=started, finished=self.kernel.now)
        head = reply.head
        if not isinstance(head, HttpResponse):
            return Response(status=None, body=reply.body, raw=reply.body,
                            reason="not an HTTP reply", started=started,
                            finished=self.kernel.now)
        return Response(status=head.status_code,
                        headers=[(k.decode("latin-1"), v.decode("latin-1"))
                                 for k, v in head.headers],
                        body=reply.body, started=started, finished=self.kernel.now)

    def _host_of(self, address: str) -> str:
        """The node ``address`` names (the first node when none does)."""
        first = next(iter(self.nodes))
        try:
            node, _port = self.net.resolve(first, address)
        except OSError:
            return first
        return node.name if node is not None else first

    def ping(self, address: str, *, via: str | None = None, timeout: float = 4.0) -> bytes | None:
        """``uwsgi --ping address``: the node's warning message (``b""`` when healthy),
        None when it does not answer."""
        from .net._client import ping_result
        from .protocol import Ping

        try:
            return ping_result(self.exchange(address, Ping(), via=via, timeout=timeout))
        except OSError:
            return None

    def spool(self, address: str, vars: Any, *, via: str | None = None,
              timeout: float = 4.0) -> bool | None:
        """A remote spool request (modifier1 17) with ``vars`` (pairs of bytes, or a raw
        block): True if the node wrote the task, False if it refused, None for no ack."""
        from .net._client import signal_result, spool_request

        try:
            reply = self.exchange(address, spool_request(vars), via=via, timeout=timeout)
        except OSError:
            return None
        return signal_result(reply)

    def add_fastcgi(self, name: str, app: Callable[[dict[bytes, bytes], bytes], bytes], *,
                    address: str, port: int = 9000) -> Any:
        """A virtual FastCGI responder (simulation-only, for 1.4's ``uwsgi.fcgi()`` on
        ``legacy=True`` nodes) at ``address:port``: ``app(params, stdin)`` returns the
        CGI response's bytes (``simuwsgi.network._fastcgi``)."""
        from .network._fastcgi import add_fastcgi

        return add_fastcgi(self.net, name, app, address, port)

    def add_erlang(self, name: str, *, processes: dict[str, Callable[[Any], Any]] | None = None,
                   functions: dict[str, Callable[..., Any]] | None = None,
                   address: str | None = None) -> Any:
        """A virtual Erlang node ``name`` (``"erl@host"``; simulation-only, for 1.4's
        ``erlang_*`` functions on ``legacy=True`` nodes): registered ``processes``
        (name -> fn(message), whose result answers the sender) and ``functions`` for
        rpc (``"mod:fun"`` -> fn(*args)); ``address`` defaults to ``10.0.1.N``. Its
        ``send(cnode, process, term)`` and ``rpc(cnode, function, arg)`` reach the
        ``--erlang`` C-nodes of ``legacy=True`` nodes (``simuwsgi.network._erlang``)."""
        from .network._erlang import ErlangNode, add_erlang

        count = sum(isinstance(n.inst, ErlangNode) for n in self.net.nodes.values())
        return add_erlang(self.net, name, processes, functions,
                          address or f"10.0.1.{count + 1}")

    def send_udp(self, address: str, modifier1: int, payload: bytes = b"", modifier2: int = 0,
                 *, via: str | None = None) -> int:
        """One uwsgi datagram to the 1.4 ``--cluster`` group ``address`` (``legacy=True``
        nodes), from a client on node ``via``'s host (default: the first node), as 1.4's
        client commands sent them: ``uwsgi --cluster-reload G`` is ``send_udp(G, 98)``,
        ``uwsgi --cluster-log G`` (a line from stdin) ``send_udp(G, 96, line)``. Returns
        the bytes sent (``simuwsgi.network._legacy``)."""
        from .network._legacy import send_datagram

        self._ensure_started()
        node = self[via] if via is not None else next(iter(self.nodes.values()))
        return send_datagram(node.inst, address, modifier1, bytes(payload), modifier2)

    # -- the trace -------------------------------------------------------------------------
    def _record(self, kind: str, **fields: Any) -> None:
        self.trace.add(self.kernel.now, "cluster", kind, fields)

    def digest(self) -> str:
        """SHA-256 of the cluster's trace (every node's records)."""
        return self.trace.digest()

    @property
    def log(self) -> list[str]:
        """Every node's log lines, each prefixed with its node name, in time order."""
        lines = [(t, i, f"[{name}] {line}")
                 for i, (name, node) in enumerate(self.nodes.items())
                 for t, _p, line in node.inst.log_lines]
        return [line for _t, _i, line in sorted(lines, key=lambda x: (x[0], x[1]))]

    def processes(self) -> Iterable[tuple[str, Any]]:
        """Every node's processes, as ``(node name, process)``."""
        for name, node in self.nodes.items():
            for proc in node.processes():
                yield name, proc

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self.started else "new")
        return f"<Cluster seed={self.seed} nodes={list(self.nodes)} t={self.kernel.now:.3f} {state}>"

