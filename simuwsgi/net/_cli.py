"""The network subcommands of ``simuwsgi``: ``serve`` and the node client.

    simuwsgi serve [--for SECONDS] [--seed N] [--start ISO] [--tz ZONE]
                   [--hostname NAME] [--mode sim|fork] [--no-vfork]
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
value, ping warning message) are written to stdout, raw, followed by a newline.

Exit status of the client commands: 0 success (ping: a pong with no warning); 1 the node
answered "no" (it closed without a reply - uWSGI's only refusal -, a signal or spool
ack of 0, a cache miss); 2 bad usage; 3 the node could not be reached (connection
error, timeout); 4 ping: the node answered with a warning message (as ``uwsgi --ping``
reports a degraded node). ``serve``: 0 the instance stopped (``uwsgi.stop()``, the
``--for`` deadline, Ctrl-C); 2 bad uWSGI options; 3 the sockets could not be bound or
the simulation failed.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from . import _client

__all__ = ["add_commands", "run_command"]

CLIENT_COMMANDS = ("ping", "rpc", "signal", "cache", "spool")

OK, NO, USAGE, UNREACHABLE, WARNING = 0, 1, 2, 3, 4


def add_commands(sub: Any) -> None:
    """Add ``serve`` and the client commands to the ``simuwsgi`` subparsers."""
    serve = sub.add_parser("serve", help="serve a simulated instance on the sockets its "
                                         "options name (uWSGI options after --)")
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


def _client_command(args: argparse.Namespace) -> int:
    client = _client.NodeClient(args.address, timeout=args.timeout)
    command = args.command
    if command == "ping":
        message = client.ping()
        if message is None:
            print(f"simuwsgi ping: no pong from {args.address}", file=sys.stderr)
            return NO
        if message:
            _out(message)
            return WARNING
        return OK
    if command == "rpc":
        result = client.rpc(_b(args.function), *(_b(a) for a in args.args))
        if result is None:
            return NO
        _out(result)
        return OK
    if command == "signal":
        if not 0 <= args.num <= 255:
            raise ValueError(f"a uWSGI signal is 0..255, not {args.num}")
        return OK if client.signal(args.num) else NO
    if command == "spool":
        pairs = []
        for item in args.vars:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"spool vars are KEY=VALUE, not {item!r}")
            pairs.append((_b(key), _b(value)))
        return OK if client.spool(pairs) else NO
    return _cache(client, args)


def _cache(client: _client.NodeClient, args: argparse.Namespace) -> int:
    cmd = args.cmd
    cache = _b(args.cache)
    if cmd == "clear":
        return OK if client.cache_clear(cache) else NO
    if args.key is None:
        raise ValueError(f"cache {cmd} needs a KEY")
    key = _b(args.key)
    if cmd in ("set", "update"):
        if args.value is None:
            raise ValueError(f"cache {cmd} needs a KEY and a VALUE")
        store = client.cache_set if cmd == "set" else client.cache_update
        return OK if store(key, _b(args.value), args.expires, cache) else NO
    if cmd == "get":
        value = client.cache_get(key, cache)
        if value is None:
            return NO
        _out(value)
        return OK
    if cmd == "exists":
        return OK if client.cache_exists(key, cache) else NO
    return OK if client.cache_del(key, cache) else NO


def _serve(args: argparse.Namespace, uwsgi_options: list[str]) -> int:
    from pathlib import Path

    from .._errors import ConfigError, SimulationError
    from ..clock import RealClock
    from ..scenario import parse_duration
    from ..simulation import Simulation
    from ._serve import serve_forever

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
        sim = Simulation(uwsgi_options, seed=args.seed,
                         start=args.start if args.start else RealClock.time(), tz=args.tz,
                         app_dir=Path.cwd(), hostname=args.hostname or socket.gethostname(),
                         network="real", mode=args.mode, vfork=args.vfork,
                         trace_kinds=kinds)
    except (ConfigError, ValueError) as exc:
        print(f"simuwsgi: {exc}", file=sys.stderr)
        return USAGE
    if not sim.opts.strings("socket", "uwsgi-socket", "http-socket"):
        print("simuwsgi serve: nothing to serve: give --socket and/or --http-socket "
              "addresses", file=sys.stderr)
        return USAGE
    try:
        serve_forever(sim, duration=duration, log=sys.stderr)
    except KeyboardInterrupt:
        return _save_trace(sim, args.trace)
    except ConfigError as exc:
        print(f"simuwsgi: {exc}", file=sys.stderr)
        return USAGE
    except (OSError, SimulationError) as exc:
        print(f"simuwsgi serve: {exc}", file=sys.stderr)
        return UNREACHABLE
    except Exception as exc:  # noqa: BLE001 - trio wraps task errors in an ExceptionGroup
        inner = getattr(exc, "exceptions", (exc,))[0]
        print(f"simuwsgi serve: {inner!r}", file=sys.stderr)
        return UNREACHABLE
    return _save_trace(sim, args.trace)


def _save_trace(sim: Any, path: str | None) -> int:
    if path is not None:
        try:
            sim.trace.save(path)
        except OSError as exc:
            print(f"simuwsgi serve: cannot save the trace to {path}: {exc}", file=sys.stderr)
            return UNREACHABLE
    return OK
