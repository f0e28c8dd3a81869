"""uWSGI mules and farms: message queues, the default mule loop, programmed mules.

What it models (``core/mule.c``, ``core/signal.c`` farm routing, ``core/utils.c``
``create_msg_pipe``, ``plugins/python/uwsgi_pymodule.c`` mule/farm functions,
``plugins/python/python_plugin.c`` ``uwsgi_python_mule``/``uwsgi_python_mule_msg``;
``semantics.md`` §6, ``api.md`` §9):

* ``--mules N`` and ``--mule[=script]`` add mules 1..M in option order; ``--farm
  name:1,3`` groups existing mules (an unknown id is refused as uWSGI exits on it);
  these options imply ``--master`` in uWSGI.
* Queues are owned by the master, so messages survive a mule's death and are read by
  its replacement: one shared queue, one per mule, one per farm. Each is a Linux
  ``AF_UNIX SOCK_SEQPACKET`` socketpair: boundaries kept, sends non-blocking, a reader
  with a short buffer gets the message truncated. Capacity is the socket send buffer,
  accounted as the kernel does: each queued message costs its skb ``truesize``
  (``_truesize``: 256 + the kmalloc bucket of len + 320 for linear skbs, 16640 + the rest
  for paged ones; measured on Linux 6.x x86-64) and a send is accepted while the queued
  total is below the buffer; a message longer than buffer - 32 bytes is refused
  (``Message too long``). Buffer = 212992 bytes (``net.core.wmem_default``) or, with
  ``--mule-msg-size N``, ``max(2 * min(N, 212992), 4608)`` (``SO_SNDBUF`` doubling, capped
  by a stock ``wmem_max``). A refused message makes ``mule_msg`` return False and logs
  ``*** MULE MSG QUEUE IS FULL: buffer size N bytes ...`` when the queue is full.
* Who reads: the shared queue and a farm's queue go to whichever eligible mule is
  waiting (``workers.choose``: seeded, traced); a private queue only to its mule. A
  message arriving while no eligible mule waits stays queued until one looks.
* The default loop (no script, or after the post-fork hook returned) waits on the
  shared and private signal sockets, its farms' signal sockets, the private and shared
  queues and its farms' queues (scanned in that order when several are ready);
  signals run their handler (``--mule-harakiri`` armed around it); a message, read
  with a 65536-byte buffer, goes to ``uwsgi.mule_msg_hook(msg)``, or, without a hook,
  is logged ``*** mule N received a L bytes message ***``.
* A programmed mule (``--mule=file.py``) runs the file as ``__main__`` after the post-
  fork hook; ``--mule=pkg.mod:func`` calls ``func()``; when it returns (or raises) the
  mule exits and the master respawns it about a second later. Any other value (no
  ``.py``, no ``:``) gives the default loop.
* ``mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1)``: only in a
  mule (``ValueError`` checked before the arguments); waits on the private queue, the
  shared queue, then — only when ``signals`` is exactly None or False, the inverted
  flag of ``uwsgi_mule_get_msg`` — the signal sockets (a handled signal returns None),
  then the farm queues unless ``farms`` is None/False; ``timeout`` in seconds
  (``-1`` and other negatives: forever) returns ``b''``; the message is truncated to
  ``buffer_size``.
* ``farm_get_msg()`` blocks forever on the calling mule's farm queues (up to 65536
  bytes); ``farm_msg(farm, msg)`` (``ss#``) returns None always (unknown farm
  ignored); ``in_farm([name])`` (``|s``); ``mule_msg(msg[, target])`` (``s#|O``) raises
  ``ValueError('no mule configured')``, ``ValueError('unknown farm')`` for a bytes
  farm name not found, ``ValueError('invalid mule')`` for any other non-int target;
  an int target outside 0..M (undefined behaviour in C) returns False.
* signals to ``farmN``/``farm_NAME`` go to the farm's signal socket: one member mule
  in its default loop reads it (``unknown farm: NAME`` / ``invalid signal target``).

Left out: the receive-side kernel accounting (only the send buffer limits a queue),
``sys.modules['__main__']`` is not replaced while a mule script runs (the script gets
its own ``__main__`` module object), mule cheap mode and ``--touch-mules-reload``.
"""

from __future__ import annotations

import importlib
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..server._pyarg import no_kwargs, parser
from ..server.config import atoi
from ..server.processes import Mule
from .._core.accel import load

if TYPE_CHECKING:
    from ..server.interface import Instance

#: the optional C accelerator: the common round trip (see _cmules.c)
_c = load(f"{__package__}._cmules")

__all__ = ["DEFAULT_SNDBUF", "MsgQueue", "Mules"]

#: ``net.core.wmem_default`` and ``wmem_max`` of a stock Linux kernel.
DEFAULT_SNDBUF = 212992
WMEM_MAX = 212992
#: ``SOCK_MIN_SNDBUF`` as observed (``--mule-msg-size 1000`` gives 4608).
MIN_SNDBUF = 4608
#: The receive buffer of the default mule loop and of ``farm_get_msg``.
MULE_READ_BUFFER = 65536

_SKB_OVERHEAD = 256       # SKB_DATA_ALIGN(sizeof(struct sk_buff))
_SHINFO = 320             # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
_MAX_LINEAR = 16384 - _SHINFO


def _truesize(length: int) -> int:
    """The skb ``truesize`` Linux charges to the sender for a datagram of ``length``."""
    if length <= 512 - _SHINFO:  # the common short message: the smallest skb
        return _SKB_OVERHEAD + 512
    if length <= _MAX_LINEAR:
        size = 512
        while size < length + _SHINFO:
            size *= 2
        return _SKB_OVERHEAD + size
    return _SKB_OVERHEAD + 16384 + (length - _MAX_LINEAR)


class MsgQueue:
    """One SOCK_SEQPACKET socketpair: datagrams, bounded by the send buffer."""

    __slots__ = ("items", "name", "sndbuf", "used")

    def __init__(self, name: str, sndbuf: int) -> None:
        self.name = name
        self.sndbuf = sndbuf
        self.items: deque[bytes] = deque()
        self.used = 0

    def push(self, msg: bytes) -> str:
        """'' if queued, else why not ('full' or 'too long')."""
        if len(msg) > self.sndbuf - 32:
            return "too long"
        if self.used >= self.sndbuf:
            return "full"
        self.items.append(msg)
        self.used += _truesize(len(msg))
        return ""

    def pop(self) -> bytes:
        msg = self.items.popleft()
        self.used -= _truesize(len(msg))
        return msg

    def __len__(self) -> int:
        return len(self.items)


class _Farm:
    __slots__ = ("id", "members", "name", "queue", "signals")

    def __init__(self, ident: int, name: str, members: list[int], sndbuf: int) -> None:
        self.id = ident
        self.name = name
        self.members = members
        self.queue = MsgQueue(f"farm {name}", sndbuf)
        self.signals: deque[int] = deque()


class _Wait:
    """What a parked mule watches: sources it accepts, and its timeout timer."""

    __slots__ = ("farm_signals", "farms", "mode", "signals", "timer")

    def __init__(self, mode: str, *, signals: bool, farm_signals: bool, farms: bool) -> None:
        self.mode = mode
        self.signals = signals
        self.farm_signals = farm_signals
        self.farms = farms
        self.timer: Any = None


LOOP = "loop"
GET_MSG = "get_msg"
FARM_GET = "farm_get"

_UNTIMED_GET_WAITS = {(sig, farms): _Wait(GET_MSG, signals=sig, farm_signals=False, farms=farms)
                      for sig in (False, True) for farms in (False, True)}


class Mules:
    """The mules, their queues and farms, and the mule side of the ``uwsgi`` module."""

    @classmethod
    def create(cls, inst: Instance) -> Mules:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        opts = inst.opts
        #: ``--mule``/``--mules`` in option order: the script (None = default loop).
        self.patches: list[str | None] = []
        for name, value in opts.items:
            if name == "mule":
                self.patches.append(value if isinstance(value, str) and value else None)
            elif name == "mules":
                self.patches.extend([None] * max(0, atoi(str(value))))
        size = opts.int("mule-msg-size", 0)
        self.sndbuf = max(2 * min(size, WMEM_MAX), MIN_SNDBUF) if size > 0 else DEFAULT_SNDBUF
        self.shared = MsgQueue("shared", self.sndbuf)
        self.private: dict[int, MsgQueue] = {
            i: MsgQueue(f"mule {i}", self.sndbuf) for i in range(1, len(self.patches) + 1)}
        self.farms: list[_Farm] = []
        #: what ``uwsgi_setup_mules_and_farms`` logs (the master's startup prints it)
        self.setup_lines: list[str] = []
        for index, value in enumerate(opts.strings("farm"), start=1):
            self.farms.append(self._parse_farm(index, value))
        self.harakiri = opts.int("mule-harakiri", 0)
        self.waiting: dict[Mule, _Wait] = {}

    def _parse_farm(self, index: int, value: str) -> _Farm:
        name, colon, members = value.partition(":")
        if not colon:
            raise ConfigError(f"invalid farm value ({value}) must be in the form "
                              "name:mule[,muleN].")
        ids: list[int] = []
        for token in members.split(","):
            if not token:
                continue
            ident = atoi(token)
            if ident not in self.private:
                raise ConfigError(f"invalid mule id: {token} (uWSGI exits)")
            ids.append(ident)
        # logged by the master's startup, just before the operational mode (banner.py)
        self.setup_lines.append(f"created farm {index} name: {name} mules:{members}")
        return _Farm(index, name, ids, self.sndbuf)

    # -- what the core asks ---------------------------------------------------------------
    def process_ids(self) -> list[int]:
        return list(range(1, len(self.patches) + 1))

    def script_for(self, ident: int) -> str | None:
        return self.patches[ident - 1] if 0 < ident <= len(self.patches) else None

    def configure(self, mule: Mule) -> None:
        mule.farms = [f.name for f in self.farms if mule.id in f.members]

    def process_died(self, proc: Any) -> None:
        wait = self.waiting.pop(proc, None)
        if wait is not None and wait.timer is not None:
            wait.timer.cancel()

    def close(self) -> None:
        for wait in self.waiting.values():
            if wait.timer is not None:
                wait.timer.cancel()
        self.waiting.clear()

    def main(self, mule: Mule) -> None:
        """The mule's life after its post-fork hook (``uwsgi_mule_run``)."""
        script = mule.script
        if script and (script.endswith(".py") or ":" in script):
            self._run_patch(mule, script)
            return  # the mule exits; the master respawns it
        self.default_loop(mule)

    def _run_patch(self, mule: Mule, script: str) -> None:
        inst = self.inst
        inst.record("mule.script", mule, script=script)
        if script.endswith(".py"):
            inst.call_python(self._exec_script, script)
        else:
            module_name, _, attr = script.partition(":")
            ok, func = inst.call_python(self._load_callable, module_name, attr)
            if ok and func is not None:
                inst.call_python(func)

    def _exec_script(self, script: str) -> None:
        import types

        path = Path(script)
        if not path.is_absolute():
            base = self.inst.opts.str("chdir") or str(self.inst.opts.base_dir)
            path = Path(base) / path
        source = path.read_text()
        module = types.ModuleType("__main__")
        module.__file__ = str(path)
        module.__builtins__ = __builtins__  # type: ignore[attr-defined]
        exec(compile(source, str(path), "exec"), module.__dict__)

    @staticmethod
    def _load_callable(module_name: str, attr: str) -> Any:
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    # -- the default loop -------------------------------------------------------------------
    def default_loop(self, mule: Mule) -> None:
        wait = _Wait(LOOP, signals=True, farm_signals=True, farms=True)
        while True:
            item = self._scan(mule, wait)
            if item is None:
                item = self._park(mule, wait, "mule loop")
            kind, payload = item
            if kind == "sig":
                self.run_signal(mule, payload)
            else:
                self._dispatch(mule, payload[:MULE_READ_BUFFER])

    def run_signal(self, mule: Mule, num: int) -> None:
        signals = self.inst.subsystems.get("signals")
        if signals is None:
            return
        mule.signum = num  # the signal the mule handles (its harakiri line names it)
        if self.harakiri > 0:
            self.inst.arm_harakiri(mule, self.harakiri)
        try:
            signals.run_handler(mule, num)
        finally:
            if self.harakiri > 0 and mule.alive:
                self.inst.arm_harakiri(mule, 0)

    def _dispatch(self, mule: Mule, msg: bytes) -> None:
        inst = self.inst
        hook = getattr(inst.facade, "mule_msg_hook", None)
        inst.record("mule.msg", mule, bytes=len(msg), hook=hook is not None)
        if hook is None:
            inst.log(f"*** mule {mule.id} received a {len(msg)} bytes message ***", mule)
            return
        inst.call_python(hook, msg)

    # -- waiting and handing off --------------------------------------------------------------
    def _scan(self, mule: Mule, wait: _Wait) -> tuple[str, Any] | None:
        """Something already ready for ``mule`` (in uWSGI's poll order), taken."""
        mode = wait.mode
        signals = self.inst.subsystems.get("signals") if mode == LOOP or wait.signals else None
        if mode == LOOP and signals is not None:
            if signals.shared_mules:
                return ("sig", signals.shared_mules.popleft())
            if mule.signal_queue:
                return ("sig", mule.signal_queue.popleft())
            for farm in self.farms:
                if mule.id in farm.members and farm.signals:
                    return ("sig", farm.signals.popleft())
        if mode != FARM_GET:
            own = self.private.get(mule.id)
            if own is not None and own.items:
                return ("msg", own.pop())
            if self.shared.items:
                return ("msg", self.shared.pop())
        if mode == GET_MSG and signals is not None:
            if signals.shared_mules:
                return ("sig", signals.shared_mules.popleft())
            if mule.signal_queue:
                return ("sig", mule.signal_queue.popleft())
        if wait.farms:
            for farm in self.farms:
                if mule.id in farm.members and farm.queue.items:
                    return ("msg", farm.queue.pop())
        return None

    def _park(self, mule: Mule, wait: _Wait, reason: str) -> tuple[str, Any]:
        self.waiting[mule] = wait
        return self.inst.kernel.park(reason)  # type: ignore[no-any-return]

    def _hand(self, mule: Mule, item: tuple[str, Any]) -> None:
        wait = self.waiting.pop(mule)
        if wait.timer is not None:
            wait.timer.cancel()
            wait.timer = None
        self.inst.kernel.wake(mule, item)

    def _timed_out(self, mule: Mule, wait: _Wait) -> None:
        if self.waiting.get(mule) is wait:
            del self.waiting[mule]
            self.inst.kernel.resume(mule, ("timeout", None))

    def _eligible(self, test: Any) -> list[Mule]:
        return [m for m, w in self.waiting.items() if m.alive and test(m, w)]

    def _offer_shared_msg(self) -> None:
        if not self.shared.items:
            return
        takers = self._eligible(lambda m, w: w.mode != FARM_GET)
        if takers:
            from ..server.workers import choose

            mule = choose(self.inst, takers, "mule message")
            self._hand(mule, ("msg", self.shared.pop()))

    def _send_private(self, queue: MsgQueue, ident: int, msg: bytes) -> bool:
        """``mule_msg`` to mule ``ident``'s own queue. A mule waiting on its empty queue
        takes the message at once (as it would take it off the socket: queued and read
        in the same instant, so nothing is charged to the buffer in between)."""
        mule = self.inst.mules.get(ident)
        wait = self.waiting.get(mule) if mule is not None else None  # type: ignore[arg-type]
        taker = mule if wait is not None and wait.mode != FARM_GET and not queue.items \
            else None
        ok = self._send(queue, msg, taker)
        if taker is None and wait is not None and wait.mode != FARM_GET and queue.items:
            self._hand(mule, ("msg", queue.pop()))  # type: ignore[arg-type]
        return ok

    def _offer_farm_msg(self, farm: _Farm) -> None:
        if not farm.queue.items:
            return
        takers = self._eligible(lambda m, w: w.farms and m.id in farm.members)
        if takers:
            from ..server.workers import choose

            mule = choose(self.inst, takers, f"farm {farm.name} message")
            self._hand(mule, ("msg", farm.queue.pop()))

    # -- signals (called by the signals subsystem) ------------------------------------------------
    def wake_for_signal(self, mule: Mule | None) -> None:
        """A signal was queued for ``mule`` (or on the shared mule socket: None)."""
        signals = self.inst.subsystems.get("signals")
        if signals is None:
            return
        if mule is not None:
            if not mule.signal_queue:
                return
            if mule in signals.waiting:
                signals._wake_waiter(mule, mule.signal_queue.popleft())
                return
            wait = self.waiting.get(mule)
            if wait is not None and (wait.mode == LOOP or (wait.mode == GET_MSG and wait.signals)):
                self._hand(mule, ("sig", mule.signal_queue.popleft()))
            return
        if not signals.shared_mules:
            return
        takers = [m for m in signals.waiting if isinstance(m, Mule) and m.alive]
        takers += self._eligible(
            lambda m, w: w.mode == LOOP or (w.mode == GET_MSG and w.signals))
        if not takers:
            return
        from ..server.workers import choose

        taker = choose(self.inst, takers, "mule signal")
        num = signals.shared_mules.popleft()
        if taker in signals.waiting:
            signals._wake_waiter(taker, num)
        else:
            self._hand(taker, ("sig", num))

    def route_farm_signal(self, num: int, target: str) -> bool:
        """``farm_NAME`` / ``farmN`` targets of ``uwsgi_route_signal``."""
        inst = self.inst
        if target.startswith("farm_"):
            name = target[5:]
            farm = next((f for f in self.farms if f.name == name), None)
            if farm is None:
                inst.log(f"unknown farm: {name}", inst.master)
                return False
        else:
            index = atoi(target[4:])
            if index > len(self.farms) or index <= 0:
                inst.log(f"invalid signal target: {target}", inst.master)
                return False
            farm = self.farms[index - 1]
        farm.signals.append(num)
        takers = self._eligible(lambda m, w: w.mode == LOOP and m.id in farm.members)
        if takers:
            from ..server.workers import choose

            mule = choose(self.inst, takers, f"farm {farm.name} signal")
            self._hand(mule, ("sig", farm.signals.popleft()))
        return True

    # -- sending ----------------------------------------------------------------------------------
    def _send(self, queue: MsgQueue, msg: bytes, taker: Mule | None = None) -> bool:
        """Queue ``msg`` (a message that fits goes straight to ``taker``, a mule waiting
        on the empty ``queue``); False, logged, when the queue refuses it."""
        inst = self.inst
        direct = taker is not None and len(msg) <= queue.sndbuf - 32
        why = "" if direct else queue.push(msg)
        if why == "full":
            inst.log(f"*** MULE MSG QUEUE IS FULL: buffer size {queue.sndbuf} bytes (you can "
                     "tune it with --mule-msg-size) ***")
        elif why:
            inst.log("mule_send_msg(): Message too long [core/mule.c line 28]")
        proc = inst.kernel.current
        inst.trace.add(inst.kernel.now, proc.name if proc is not None else "master",
                       "mule.send", {"queue": queue.name, "bytes": len(msg), "ok": not why})
        if direct:
            self._hand(taker, ("msg", msg))  # type: ignore[arg-type]
        return not why

    def mule_msg(self, msg: bytes, target: Any) -> bool:
        if not self.patches:
            raise ValueError("no mule configured")
        if target is None:
            ok = self._send(self.shared, msg)
            self._offer_shared_msg()
            return ok
        if isinstance(target, bytes):
            farm = self._farm(target.decode("utf-8", "surrogateescape"))
            if farm is None:
                raise ValueError("unknown farm")
            ok = self._send(farm.queue, msg)
            self._offer_farm_msg(farm)
            return ok
        if isinstance(target, int):
            ident = int(target)
            if ident == 0:
                ok = self._send(self.shared, msg)
                self._offer_shared_msg()
                return ok
            queue = self.private.get(ident)
            if queue is None:
                return False  # out of the mule array: undefined in C
            return self._send_private(queue, ident, msg)
        raise ValueError("invalid mule")

    def farm_msg(self, name: str, msg: bytes) -> None:
        farm = self._farm(name)
        if farm is None:
            return
        if not self._send(farm.queue, msg):
            self.inst.log("write(): Resource temporarily unavailable [plugins/python/"
                          "uwsgi_pymodule.c line 1237]")
        self._offer_farm_msg(farm)
        return

    def _farm(self, name: str) -> _Farm | None:
        return next((f for f in self.farms if f.name == name), None)

    # -- receiving -----------------------------------------------------------------------------------
    def get_msg(self, mule: Mule, signals_flag: Any, farms_flag: Any, buffer_size: int,
                timeout: int) -> bytes | None:
        watch_signals = signals_flag is None or signals_flag is False
        watch_farms = not (farms_flag is None or farms_flag is False)
        if timeout > 0:
            wait = _Wait(GET_MSG, signals=watch_signals, farm_signals=False, farms=watch_farms)
        else:  # no timer to attach: one shared, never-modified wait per flag pair
            wait = _UNTIMED_GET_WAITS[watch_signals, watch_farms]
        item = self._scan(mule, wait)
        if item is None:
            if timeout == 0:
                return b""
            if timeout > 0:
                wait.timer = self.inst.kernel.schedule(timeout, self._timed_out, mule, wait)
            item = self._park(mule, wait, "mule_get_msg")
        return self._received(mule, item, buffer_size)

    def _received(self, mule: Mule, item: tuple[str, Any], buffer_size: int) -> bytes | None:
        """What ``mule_get_msg`` returns for what it took or was handed."""
        kind, payload = item
        if kind == "timeout":
            return b""
        if kind == "sig":
            self.run_signal(mule, payload)
            return None
        if buffer_size < 0:
            buffer_size += 1 << 32  # an int stored into a size_t initialised to 65536
        return payload[:buffer_size]  # type: ignore[no-any-return]

    def farm_get(self, mule: Mule) -> bytes | None:
        wait = _Wait(FARM_GET, signals=False, farm_signals=False, farms=True)
        item = self._scan(mule, wait)
        if item is None:
            item = self._park(mule, wait, "farm_get_msg")
        return item[1][:MULE_READ_BUFFER]  # type: ignore[no-any-return]

    # -- the uwsgi module ------------------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        kernel = self.inst.kernel
        p_msg = parser("s#|O:mule_msg")
        p_farm_msg = parser("ss#:farm_msg")
        p_in_farm = parser("|s:in_farm")
        p_get = parser("|OOii:mule_get_msg")
        keywords = ("signals", "farms", "buffer_size", "timeout")

        private = self.private

        def mule_msg(*args: Any, **kw: Any) -> bool:
            if not kw and len(args) == 2 and type(args[0]) is bytes and type(args[1]) is int:
                # the common call, to one mule's own queue: nothing to convert or look up
                ident = args[1]
                queue = private.get(ident)
                if queue is not None:
                    return self._send_private(queue, ident, args[0])
                return self.mule_msg(args[0], ident)
            no_kwargs("mule_msg", kw)
            values = p_msg(args)
            msg = _as_bytes(values[0])
            target = values[1] if len(values) > 1 else None
            if target is not None and not isinstance(target, (bytes, int)):
                if not self.patches:
                    raise ValueError("no mule configured")
                raise ValueError("invalid mule")
            return self.mule_msg(msg, target)

        def farm_msg(*args: Any, **kw: Any) -> None:
            no_kwargs("farm_msg", kw)
            name, msg = p_farm_msg(args)
            return self.farm_msg(name, _as_bytes(msg))

        def in_farm(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("in_farm", kw)
            values = p_in_farm(args)
            proc = kernel.current
            if not isinstance(proc, Mule):
                return None
            for farm in self.farms:
                if (not values or farm.name == values[0]) and proc.id in farm.members:
                    return True
            return None

        def mule_get_msg(*args: Any, **kw: Any) -> bytes | None:
            proc = kernel.current
            if not isinstance(proc, Mule):
                raise ValueError("you can receive mule messages only in a mule !!!")
            if not args and not kw:
                return self.get_msg(proc, True, True, MULE_READ_BUFFER, -1)  # the defaults
            values = list(args)
            for index, name in enumerate(keywords):
                if name not in kw:
                    continue
                if index < len(args):
                    raise TypeError(f"argument for mule_get_msg() given by name "
                                    f"('{name}') and position ({index + 1})")
                while len(values) <= index:
                    values.append(_DEFAULTS[len(values)])
                values[index] = kw[name]
            for name in kw:
                if name not in keywords:
                    raise TypeError(f"'{name}' is an invalid keyword argument for "
                                    "mule_get_msg()")
            parsed = p_get(tuple(values))
            full = list(parsed) + list(_DEFAULTS[len(parsed):])
            sig, farms, size, timeout = full
            return self.get_msg(proc, sig, farms, size, timeout)

        def farm_get_msg(*_args: Any) -> bytes | None:
            proc = kernel.current
            if not isinstance(proc, Mule):
                raise ValueError("you can receive farm messages only in a mule !!!")
            return self.farm_get(proc)

        funcs = {"mule_msg": mule_msg, "farm_msg": farm_msg, "in_farm": in_farm,
                 "mule_get_msg": mule_get_msg, "farm_get_msg": farm_get_msg}
        if _c is not None:  # the common round trip in C (see _cmules.c)
            funcs["mule_msg"] = _c.sender((private, self.inst.mules, self.waiting, kernel,
                                           self.inst.trace, FARM_GET, mule_msg))
            funcs["mule_get_msg"] = _c.getter((
                kernel, Mule, private, self.shared, self.farms, self.waiting,
                _UNTIMED_GET_WAITS[False, True], self._received, mule_get_msg))
        return funcs


#: Defaults of ``mule_get_msg``'s four arguments (the unset C values).
_DEFAULTS: tuple[Any, ...] = (True, True, MULE_READ_BUFFER, -1)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)

