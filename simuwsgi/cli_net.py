"""The network subcommands of ``simuwsgi``: ``serve`` and the node client.

    simuwsgi serve [--for SECONDS] [--seed N] [--start ISO] [--tz ZONE]
                   [--hostname NAME] [--mode sim|fork] [--no-vfork]
                   [--subprocess run|refuse]
                   [--trace FILE [--trace-kinds KINDS]] -- <uwsgi options>
    simuwsgi ping ADDR
    simuwsgi rpc ADDR FUNCTION [ARG...]
    simuwsgi signal ADDR NUM
    simuwsgi cache ADDR get|exists|del KEY        [--cache NAME]
    simuwsgi cache ADDR set|update KEY VALUE      [--cache NAME] [--expires SECONDS]
    simuwsgi cache ADDR clear                     [--cache NAME]
    simuwsgi spool ADDR KEY=VALUE...

``ADDR`` is a uWSGI address (``host:port``, a UNIX socket path, ``@abstract``); every
client command takes ``--timeout SECONDS`` (default 4, uWSGI's ``--socket-timeout``) and
works against real uWSGI nodes as well as simulated ones. Results (RPC result, cache
value, ping warning message) are written to stdout, raw, followed by a newline; a
healthy ping prints the round-trip time; a "no" is explained in one line on stderr.

Exit status of the client commands: 0 success (ping: a pong with no warning); 1 the node
answered "no" (it closed without a reply - uWSGI's only refusal -, a signal or spool
ack of 0, a cache miss); 2 bad usage; 3 the node could not be reached (connection
error, timeout); 4 ping: the node answered with a warning message (as ``uwsgi --ping``
reports a degraded node). ``serve``: 0 the instance stopped (``uwsgi.stop()``, the
``--for`` deadline, Ctrl-C: SIGINT shuts the master down as uWSGI's does, "goodbye to
uWSGI."); 1 the app did not load; 2 bad uWSGI options; 3 the sockets could not be
bound or the simulation failed; 130 a Ctrl-C that came before the master took SIGINT.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from .net import _client

__all__ = ["add_commands", "run_command"]

CLIENT_COMMANDS = ("ping", "rpc", "signal", "cache", "spool")

OK, NO, USAGE, UNREACHABLE, WARNING, INTERRUPTED = 0, 1, 2, 3, 4, 130


def add_commands(sub: Any) -> None:
    """Add ``serve`` and the client commands to the ``simuwsgi`` subparsers."""
    serve = sub.add_parser("serve", help="serve a simulated instance on the sockets its "
                                         "options name (uWSGI options after --)",
                           usage="simuwsgi serve [flags] -- UWSGI_OPTIONS...",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="uWSGI options go after --, e.g.\n  simuwsgi serve -- "
                                  "--master --http-socket 127.0.0.1:8000 --wsgi-file app.py")
    serve.add_argument("--for", dest="duration", help="stop after this many real seconds "
                                                      "(90, 10m...)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--start", help="first virtual instant, ISO 8601 (default: now)")
    serve.add_argument("--tz", help="time zone, e.g. Europe/Paris")
    serve.add_argument("--hostname", help="node name (default: this machine's host name)")
    serve.add_argument("--mode", default="sim", choices=["sim", "fork"],
                       help="fork: each process's user code in its own forked OS process")
    serve.add_argument("--no-vfork", dest="vfork", action="store_false",
                       help="share the app's module globals between processes (sim mode)")
    serve.add_argument("--subprocess", default="run", choices=["run", "refuse"],
                       help="commands the app starts (subprocess, os.system, os.exec*...): "
                            "run them on this host (default) or refuse them")
    serve.add_argument("--allow-no-app", action="store_true",
                       help="serve on when the app did not load (uWSGI's full dynamic mode: "
                            "RPC, caches, signals; every request a 500)")
    serve.add_argument("--trace", help="keep the trace and save it (msgpack) to FILE when "
                                       "serve ends (default: no trace is kept, so memory "
                                       "stays flat however many requests are served)")
    serve.add_argument("--trace-kinds", metavar="KINDS",
                       help="with --trace: keep only these kinds, comma-separated, a "
                            "trailing * matches a prefix (default: every kind; the trace "
                            "then grows with every request)")

    def client(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("address", help="host:port, a UNIX socket path or @abstract")
        p.add_argument("--timeout", type=float, default=_client.DEFAULT_TIMEOUT,
                       help="bound on each wait, seconds (default 4)")
        return p

    client("ping", help="ping a node (modifier1 100)")
    rpc = client("rpc", help="call an RPC function on a node (modifier1 173)")
    rpc.add_argument("function")
    rpc.add_argument("args", nargs="*")
    sig = client("signal", help="raise a uWSGI signal on a node (modifier1 110)")
    sig.add_argument("num", type=int)
    cache = client("cache", help="use a node's cache (modifier1 111, the magic interface)")
    cache.add_argument("cmd", choices=["get", "set", "update", "del", "exists", "clear"])
    cache.add_argument("key", nargs="?")
    cache.add_argument("value", nargs="?")
    cache.add_argument("--cache", default="", help="cache name (default: the first cache)")
    cache.add_argument("--expires", type=int, default=0, help="seconds (set/update)")
    spool = client("spool", help="enqueue a spool task on a node (modifier1 17)")
    spool.add_argument("vars", nargs="+", metavar="KEY=VALUE")


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _out(data: bytes) -> None:
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


def run_command(args: argparse.Namespace, uwsgi_options: list[str]) -> int:
    """Run ``serve`` or a client command; returns the exit status."""
    if args.command == "serve":
        return _serve(args, uwsgi_options)
    try:
        return _client_command(args)
    except ValueError as exc:
        print(f"simuwsgi {args.command}: {exc}", file=sys.stderr)
        return USAGE
    except OSError as exc:
        print(f"simuwsgi {args.command}: cannot reach {args.address}: {exc}", file=sys.stderr)
        return UNREACHABLE


def _no(args: argparse.Namespace, what: str) -> int:
    """The node said no: say what happened, exit 1."""
    print(f"simuwsgi {args.command}: {args.address} {what}", file=sys.stderr)
    return NO


def _client_command(args: argparse.Namespace) -> int:
    from ._core.clock import RealClock

    client = _client.NodeClient(args.address, timeout=args.timeout)
    command = args.command
    if command == "ping":
        began = RealClock.monotonic()
        message = client.ping()
        if message is None:
            return _no(args, "answered the ping without a pong")
        if message:
            _out(message)
            return WARNING
        print(f"pong from {args.address} in {(RealClock.monotonic() - began) * 1000:.2f} ms")
        return OK
    if command == "rpc":
        result = client.rpc(_b(args.function), *(_b(a) for a in args.args))
        if result is None:
            return _no(args, f"returned nothing for {args.function!r}: it has no RPC "
                             f"function of that name, or the function returned b''")
        _out(result)
        return OK
    if command == "signal":
        if not 0 <= args.num <= 255:
            raise ValueError(f"a uWSGI signal is 0..255, not {args.num}")
        return OK if client.signal(args.num) else _no(
            args, f"refused signal {args.num} (is a handler registered for it?)")
    if command == "spool":
        pairs = []
        for item in args.vars:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"spool vars are KEY=VALUE, not {item!r}")
            pairs.append((_b(key), _b(value)))
        return OK if client.spool(pairs) else _no(
            args, "refused the spool task (does it run a --spooler?)")
    return _cache(client, args)


def _cache(client: _client.NodeClient, args: argparse.Namespace) -> int:
    cmd = args.cmd
    cache = _b(args.cache)
    where = f"cache {args.cache!r}" if args.cache else "its default cache"
    if cmd == "clear":
        return OK if client.cache_clear(cache) else _no(args, f"refused to clear {where}")
    if args.key is None:
        raise ValueError(f"cache {cmd} needs a KEY")
    key = _b(args.key)
    if cmd in ("set", "update"):
        if args.value is None:
            raise ValueError(f"cache {cmd} needs a KEY and a VALUE")
        store = client.cache_set if cmd == "set" else client.cache_update
        if store(key, _b(args.value), args.expires, cache):
            return OK
        return _no(args, f"did not store {args.key!r} in {where}"
                   + (" (set keeps an existing key: use update)" if cmd == "set" else ""))
    if cmd == "get":
        value = client.cache_get(key, cache)
        if value is None:
            return _no(args, f"has no key {args.key!r} in {where}")
        _out(value)
        return OK
    found = client.cache_exists(key, cache) if cmd == "exists" else client.cache_del(key, cache)
    return OK if found else _no(args, f"has no key {args.key!r} in {where}")


def _serve(args: argparse.Namespace, uwsgi_options: list[str]) -> int:
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from ._errors import ConfigError
    from ._core.clock import RealClock
    from .scenario import parse_duration
    from .simulation import Simulation
    from .serve import serve_forever

    if not uwsgi_options:
        print("simuwsgi serve: give uWSGI options after --", file=sys.stderr)
        return USAGE
    if args.mode == "fork" and not args.vfork:
        print("simuwsgi serve: --no-vfork is for sim mode: in fork mode every process has "
              "its own memory; drop one of them", file=sys.stderr)
        return USAGE
    if args.trace_kinds and not args.trace:
        print("simuwsgi serve: --trace-kinds needs --trace FILE (without it no trace is "
              "kept)", file=sys.stderr)
        return USAGE
    kinds: list[str] | None = []  # serve keeps no trace unless asked to save one
    if args.trace:
        kinds = [k.strip() for k in args.trace_kinds.split(",")] if args.trace_kinds else None
    try:
        duration = parse_duration(args.duration) if args.duration else None
        if duration is not None and duration <= 0:
            raise ValueError(f"--for takes a positive duration (e.g. 90, 10m), not "
                             f"{args.duration!r}")
        if args.tz is not None:
            ZoneInfo(args.tz)
        sim = Simulation(uwsgi_options, seed=args.seed,
                         start=args.start if args.start else RealClock.time(), tz=args.tz,
                         app_dir=Path.cwd(), hostname=args.hostname or socket.gethostname(),
                         network="real", mode=args.mode, vfork=args.vfork,
                         trace_kinds=kinds, allow_no_app=args.allow_no_app,
                         subprocess=args.subprocess)
    except (ConfigError, ValueError, LookupError) as exc:  # ZoneInfo: a KeyError
        print(f"simuwsgi serve: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return USAGE
    if not sim.opts.strings("socket", "uwsgi-socket", "http-socket"):
        print("simuwsgi serve: nothing to serve: give --socket and/or --http-socket "
              "addresses", file=sys.stderr)
        return USAGE
    try:
        serve_forever(sim, duration=duration, log=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - trio wraps a task's error in a group
        status = _serve_failure(exc)
        if status != INTERRUPTED:
            return status
        return _save_trace(sim, args.trace) or INTERRUPTED
    return _save_trace(sim, args.trace)


def _serve_failure(exc: BaseException) -> int:
    """Say in one line why ``serve`` ended; the exit status."""
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, KeyboardInterrupt):
        print("simuwsgi serve: interrupted (the instance was shut down)", file=sys.stderr)
        return INTERRUPTED
    from ._errors import AppLoadError, ConfigError, SimulationError

    if isinstance(exc, AppLoadError):
        from .cli import app_load_message

        print(f"simuwsgi serve: {app_load_message(exc)}", file=sys.stderr)
        for line in exc.cause:
            print(f"  {line}", file=sys.stderr)
        return NO
    if isinstance(exc, ConfigError):
        print(f"simuwsgi: {exc}", file=sys.stderr)
        return USAGE
    if isinstance(exc, (OSError, SimulationError)):
        print(f"simuwsgi serve: {exc}", file=sys.stderr)
        return UNREACHABLE
    if not isinstance(exc, Exception):
        raise exc
    print(f"simuwsgi serve: {exc!r}", file=sys.stderr)
    return UNREACHABLE


def _save_trace(sim: Any, path: str | None) -> int:
    if path is not None:
        try:
            sim.trace.save(path)
        except OSError as exc:
            print(f"simuwsgi serve: cannot save the trace to {path}: {exc}", file=sys.stderr)
            return UNREACHABLE
    return OK
