"""Legion: encrypted UDP announces and the election of one Lord among uWSGI instances.

What it models (``core/legion.c`` at 2.0.30, ``shared/spec/cluster.md`` §3), in a
build with SSL only (``Simulation(..., ssl=True)``, ``cluster.add(..., ssl=True)``):
the pyuwsgi wheel has no SSL, so by default ``--legion`` is an unrecognized option and
``uwsgi.i_am_the_lord``/``lord_scroll``/``scrolls`` are absent, as there.

* ``--legion "NAME ADDR VALOR CIPHER:SECRET [IV]"`` binds the UDP port of ADDR on the
  node (the cluster's virtual network), ``--legion-node "NAME ADDR"`` is where the
  announces go; ``--legion-mcast`` adds its own address as a node. ``--legion-quorum``,
  ``--legion-scroll``, ``--legion-freq`` (3 s), ``--legion-tolerance`` (15 s),
  ``--legion-skew-tolerance`` (60 s), ``--legion-death-on-lord-error``,
  ``--legion-scroll-max-size``; hooks ``--legion-{setup,join,lord,unlord,death,
  node-joined,node-left} "NAME ACTION"``.
* The master's "legion manager thread" (``legion_loop``): it waits for a datagram or
  its timeout (``legion-freq`` minus the whole seconds since the last round), announces
  when the timeout ran out, drops members silent for more than the tolerance (the
  ``left Legion`` line, node-left hooks), reads one datagram (the receiver's checks of
  ``protocol._legion``, the loop-packet and clock-skew checks, join/death of members,
  their votes), and - from its second iteration on - runs the election
  (``legions_check_nodes_step2``): highest valor then greatest UUID, the checksum,
  unanimity of checksum and Lord vote, quorum, join/lord/unlord hooks and the quorum
  report, all with uWSGI's log lines. Time is the node's wall clock in whole seconds
  (``uwsgi_now()``), so a skewed node's announces can be refused as "untolerable".
* A graceful stop runs the death hooks and announces ``dead``; a reload (graceful or
  brutal) announces ``dead`` and the instance comes back with a new UUID; a master
  killed with SIGKILL just falls silent (its peers drop it after the tolerance).
* Hook actions: ``log:TEXT`` logs TEXT, ``signal:N`` raises uWSGI signal N in the
  master, ``cmd:``/``exec:`` and ``alarm:`` are recorded in the trace (``legion.hook``)
  and succeed, without running anything on the host; an unknown action fails
  (``ERROR unable to find legion_action``), which ``--legion-death-on-lord-error``
  punishes as uWSGI does.
* The UUID of each legion comes from the simulation's seeded RNG; a member's valor is
  kept in 16 bits as ``uwsgi_legion_add_node`` does (a member with a valor above 65535
  is therefore re-added on every announce, as in the source).

``--legion-cron`` & co. are the cron's (``simuwsgi.subsystems.cron``: it asks
``i_am_the_lord``). Left out: UNIX datagram and multicast legions (an ADDR without a
port is refused), ``--legion-attach-daemon`` & co. and the ``legions`` key of the stats
server (they are listed as not simulated).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import StartRefusedError
from ..protocol import LegionAnnounce, LegionCipher, LocalProtocolError, RemoteProtocolError
from ..protocol._header import decode_header
from ..protocol._legion import NO_UUID, legion_plaintext, parse_legion_plaintext
from ..server._pyarg import no_kwargs, parser

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["Legions"]

_U64 = (1 << 64) - 1
#: ``--legion-<event>`` option -> the phase name the hooks log.
HOOKS = {"setup": "setup", "join": "join", "lord": "lord", "unlord": "unlord",
         "death": "death", "node-joined": "node_joined", "node-left": "node_left"}
_ACTIONS = ("cmd", "exec", "signal", "log", "alarm")


@dataclass(slots=True)
class _Member:
    """A peer heard from (``struct uwsgi_legion_node``)."""

    valor: int
    name: bytes
    uuid: bytes
    scroll: bytes
    #: Its share of the checksum: valor + the sum of its UUID's bytes.
    weight: int = 0
    last_seen: int = 0
    checksum: int = 0
    lord_valor: int = 0
    lord_uuid: bytes = NO_UUID


@dataclass(slots=True)
class Legion:
    """One ``--legion`` of an instance (``struct uwsgi_legion``)."""

    name: str
    addr: str
    valor: int
    cipher: LegionCipher
    nodes: list[str] = field(default_factory=list)
    quorum: int = 0
    scroll: bytes = b""
    hooks: dict[str, list[str]] = field(default_factory=dict)
    uuid: bytes = NO_UUID
    pid: int = 0
    members: list[_Member] = field(default_factory=list)
    checksum: int = 0
    changed: bool = False
    joined: bool = False
    #: When this instance became Lord (0: it is not).
    i_am_the_lord: int = 0
    lord_valor: int = 0
    lord_uuid: bytes = NO_UUID
    lord_scroll: bytes = b""
    #: The scrolls list, as rebuilt on each membership change (None: never built).
    scrolls: list[bytes] | None = None
    suspended_til: int = 0
    last_warning: int = 0
    dead: bool = False


def _words(option: str, value: str, count: int, syntax: str) -> list[str]:
    parts = value.split(" ", count - 1)
    if len(parts) < count:
        raise StartRefusedError(f"invalid {option} syntax, must be {syntax}")
    return parts


class Legions:
    """The legions of one instance and its legion manager thread."""

    @classmethod
    def create(cls, inst: Instance) -> Legions | None:
        # the functions exist in every build with SSL, legions or not
        return cls(inst) if getattr(inst, "ssl", False) else None

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        opts = inst.opts
        self.freq = opts.int("legion-freq", 0) or 3
        self.tolerance = opts.int("legion-tolerance", 0) or 15
        self.skew_tolerance = opts.int("legion-skew-tolerance", 0) or 60
        self.death_on_lord_error = opts.int("legion-death-on-lord-error", 0)
        self.scroll_max = opts.int("legion-scroll-max-size", 0) or 4096
        self.legions: dict[str, Legion] = {}
        # the option parsers run in the order the options were given
        for name, value in opts.items:
            if name in ("legion", "legion-mcast"):
                self._add_legion(str(value), mcast=name == "legion-mcast")
            elif name in ("legion-node", "legion-quorum", "legion-scroll") or \
                    name.removeprefix("legion-") in HOOKS:
                self._configure(name, str(value))
        self.running = False
        self._inbox: deque[tuple[Legion, bytes]] = deque()
        self._timer: Any = None
        self._last_round = 0
        self._first_round = True
        self._timeout = 0

    # -- the options --------------------------------------------------------------------
    def _add_legion(self, value: str, *, mcast: bool) -> None:
        syntax = "<legion> <addr> <valor> <algo:secret>"
        name, addr, valor, algo_secret = _words("legion", value, 4, syntax)
        algo, colon, secret = algo_secret.partition(":")
        if not colon:
            raise StartRefusedError(f"invalid legion syntax, must be {syntax}")
        secret, _sp, iv = secret.partition(" ")
        try:
            cipher = LegionCipher.from_option(algo, secret.encode(),
                                              iv.encode() if _sp else None)
        except LocalProtocolError:
            raise StartRefusedError(
                f"[uwsgi-legion] unable to find algorithm/cipher {algo}") from None
        if not addr.rpartition(":")[2].isdigit():
            # a UNIX datagram socket (or a bad address): not on the virtual network; uWSGI
            # would exit as its master starts
            raise StartRefusedError(f"[uwsgi-legion] unable to activate legion {name}")
        legion = Legion(name, addr, _atoi(valor) & _U64, cipher)
        self.legions.setdefault(name, legion)
        if mcast:
            self._register_node(legion, addr)

    def _configure(self, option: str, value: str) -> None:
        """``--legion-node``/``-quorum``/``-scroll`` and the hooks, with their errors."""
        event = option.removeprefix("legion-")
        hook = event in HOOKS
        # the hook parsers prefix their errors, the others do not
        prefix = "[uwsgi-legion] " if hook else ""
        name, space, arg = value.partition(" ")
        if not space:
            what = {"node": "addr", "quorum": "quorum", "scroll": "scroll"}.get(event, "action")
            raise StartRefusedError(f"{prefix}invalid {option} syntax, must be <legion> "
                                    f"<{what}>")
        legion = self.legions.get(name)
        if legion is None:
            raise StartRefusedError(f"{prefix}unknown legion: {name}")
        if event == "node":
            self._register_node(legion, arg)
        elif event == "quorum":
            legion.quorum = _atoi(arg)
        elif event == "scroll":
            legion.scroll = arg.encode()
        else:
            if ":" not in arg:
                raise StartRefusedError(f"[uwsgi-legion] invalid {event} action: {arg}")
            legion.hooks.setdefault(HOOKS[event], []).append(arg)

    @staticmethod
    def _register_node(legion: Legion, addr: str) -> None:
        if ":" not in addr:
            raise StartRefusedError(f"[uwsgi-legion] invalid udp address: {addr}")
        legion.nodes.append(addr)

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_lord = parser("s:i_am_the_lord")
        p_scroll = parser("s:lord_scroll")
        p_scrolls = parser("s:scrolls")

        def i_am_the_lord(*args: Any, **kw: Any) -> bool:
            no_kwargs("i_am_the_lord", kw)
            (name,) = p_lord(args)
            legion = self.legions.get(name)
            return bool(legion is not None and legion.i_am_the_lord)

        def lord_scroll(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("lord_scroll", kw)
            (name,) = p_scroll(args)
            legion = self.legions.get(name)
            return legion.lord_scroll if legion is not None and legion.lord_scroll else None

        def scrolls(*args: Any, **kw: Any) -> list[bytes] | None:
            no_kwargs("scrolls", kw)
            (name,) = p_scrolls(args)
            legion = self.legions.get(name)
            if legion is None:
                return None
            return list(legion.scrolls or ())

        return {"i_am_the_lord": i_am_the_lord, "lord_scroll": lord_scroll,
                "scrolls": scrolls}

    # -- small services ------------------------------------------------------------------
    def stats(self) -> list[dict[str, Any]]:
        """The stats server's ``legions`` (``uwsgi_master_generate_stats``):
        ``i_am_the_lord`` is when this node became Lord (0: it is not), ``members``
        the peers heard from, ``name`` their host name."""
        return [{"legion": lg.name, "addr": lg.addr, "uuid": _text(lg.uuid),
                 "valor": lg.valor, "checksum": lg.checksum, "quorum": lg.quorum,
                 "i_am_the_lord": lg.i_am_the_lord, "lord_valor": lg.lord_valor,
                 "lord_uuid": _text(lg.lord_uuid), "nodes": list(lg.nodes),
                 "members": [{"name": _text(m.name), "uuid": _text(m.uuid),
                              "valor": m.valor, "checksum": m.checksum,
                              "last_seen": m.last_seen} for m in lg.members]}
                for lg in self.legions.values()]

    def _now(self) -> int:
        """``uwsgi_now()``: the node's wall clock, whole seconds."""
        return int(self.inst.wall())

    def _log(self, line: str) -> None:
        self.inst.log(line, self.inst.master)

    def _record(self, kind: str, legion: Legion, **fields: Any) -> None:
        self.inst.record(kind, self.inst.master, legion=legion.name, **fields)

    @property
    def _network(self) -> Any:
        return getattr(self.inst, "cluster_network", None)

    # -- uwsgi_start_legions ---------------------------------------------------------------
    def master_loop_started(self) -> None:
        if not self.legions:
            return
        inst = self.inst
        net = self._network
        rng = inst.kernel.rng
        for legion in self.legions.values():
            port = legion.addr.rpartition(":")[2]
            if net is not None:
                net.bind_udp(inst.node, int(port),
                             lambda data, _src, legion=legion: self._arrived(legion, data))
            legion.pid = inst.master.pid
            legion.uuid = _uuid4(rng.getrandbits(128))
            self._record("legion.setup", legion, uuid=legion.uuid.decode(),
                         valor=legion.valor)
            self._hooks(legion, "setup")
        self._log("legion manager thread enabled")
        self.running = True
        self._last_round = self._now()
        self._wait()

    # -- legion_loop -------------------------------------------------------------------------
    def _wait(self) -> None:
        """The top of the loop: compute the timeout, then wait for a datagram or it."""
        timeout = self.freq
        now = self._now()
        if now > self._last_round:
            timeout = max(0, timeout - (now - self._last_round))
        self._last_round = now
        self._timeout = timeout
        if self._inbox:
            self.inst.kernel.call_soon(self._iteration, True)
        else:
            self._timer = self.inst.kernel.schedule(timeout, self._iteration, False)

    def _arrived(self, legion: Legion, data: bytes) -> None:
        if not self.running:
            return
        self._inbox.append((legion, data))
        if self._timer is not None and self._timer.active:
            self._timer.cancel()
            self._timer = None
            self._iteration(True)

    def _alive(self) -> bool:
        inst = self.inst
        master = inst.master
        return self.running and not inst.stopped and master is not None and master.alive \
            is not False

    def _iteration(self, readable: bool) -> None:
        self._timer = None
        if not self._alive():
            self.running = False
            return
        now = self._now()
        timeout = self._timeout
        if timeout == 0 or not readable or now - self._last_round >= timeout:
            for legion in self.legions.values():
                self._announce(legion)
            self._last_round = now
        self._check_nodes()
        # a packet dropped, or a death announced, ends the iteration (``continue``):
        # no election until the next one
        goes_on = not (readable and self._inbox) or self._receive(*self._inbox.popleft())
        if goes_on and self._first_round:
            self._first_round = False
        elif goes_on:
            for legion in self.legions.values():
                self._elect(legion)
        if self.running:
            self._wait()

    # -- announces -----------------------------------------------------------------------------
    def _announce(self, legion: Legion) -> None:
        """``uwsgi_legion_announce``: one datagram to every ``--legion-node``."""
        now = self._now()
        if now <= legion.suspended_til:
            return
        legion.suspended_til = 0
        net = self._network
        if net is None or not legion.nodes:
            return
        inst = self.inst
        announce = LegionAnnounce(
            legion=legion.name.encode(), valor=legion.valor & _U64, unix=now,
            lord=legion.i_am_the_lord, name=inst.hostname.encode(), pid=legion.pid,
            uuid=legion.uuid, checksum=legion.checksum, lord_valor=legion.lord_valor,
            lord_uuid=legion.lord_uuid, scroll=legion.scroll, dead=legion.dead)
        plain = legion_plaintext(announce)
        datagram = bytes((109, len(plain) & 0xFF, (len(plain) >> 8) & 0xFF, 0)) + \
            _crypt(legion.cipher, plain, True)
        for address in legion.nodes:
            net.send_datagram(inst.node, address, datagram)

    def announce_death(self) -> None:
        """``uwsgi_legion_announce_death``: every legion says ``dead`` once."""
        for legion in self.legions.values():
            legion.dead = True
            self._record("legion.dead", legion)
            self._announce(legion)

    # -- receiving ---------------------------------------------------------------------------------
    def _receive(self, legion: Legion, datagram: bytes) -> bool:
        """Read one datagram; False when the loop goes on to its next iteration
        without an election (a dropped packet, a death)."""
        msg = self._decode(legion, datagram)
        if msg is None:
            return False
        inst = self.inst
        if msg.legion != legion.name.encode():
            self._log("[uwsgi-legion] invalid legion name")
            return False
        if msg.name == inst.hostname.encode() and msg.pid == legion.pid and \
                msg.valor == legion.valor & _U64 and msg.uuid == legion.uuid:
            return False  # our own packet (multicast loopback)
        now = self._now()
        if msg.unix < now - self.skew_tolerance:
            self._log(f"[uwsgi-legion] untolerable packet received for Legion {legion.name} "
                      f", check your clock !!!")
            self._record("legion.skew", legion, name=msg.name.decode("latin-1"),
                         unix=msg.unix, now=now)
            return False
        member = next((m for m in legion.members if m.valor == msg.valor and
                       m.name == msg.name and m.uuid == msg.uuid), None)
        if member is None:
            if msg.dead or not msg.name:
                return False
            member = _Member(msg.valor & 0xFFFF, msg.name, msg.uuid, msg.scroll,
                             _checksum(msg.valor & 0xFFFF, msg.uuid))
            legion.members.append(member)
            self._rebuild_scrolls(legion)
            self._log(f"[uwsgi-legion] {_kind(member)}: {_text(member.name)} "
                      f"valor: {member.valor} uuid: {_text(member.uuid)} joined "
                      f"Legion {legion.name}")
            self._record("legion.node_joined", legion, name=member.name.decode("latin-1"),
                         valor=member.valor, uuid=member.uuid.decode("latin-1"))
            self._hooks(legion, "node_joined")
        elif msg.dead:
            self._log(f"[uwsgi-legion] {_kind(member)}: {_text(member.name)} "
                      f"valor: {member.valor} uuid: {_text(member.uuid)} announced "
                      f"its death to Legion {legion.name}")
            self._remove(legion, member, "dead")
            return False
        member.last_seen = now
        member.lord_valor = msg.lord_valor
        member.checksum = msg.checksum
        member.lord_uuid = msg.lord_uuid
        return True

    def _decode(self, legion: Legion, datagram: bytes) -> LegionAnnounce | None:
        """The receiver's checks, each with its log line; None for a dropped packet."""
        buf = datagram[:0xFFFF - 32 - 4]
        if len(buf) < 4:
            self._log(f"[uwsgi-legion] invalid packet size: {len(buf)}")
            return None
        header = decode_header(buf)
        if header.modifier1 != 109:
            self._log("[uwsgi-legion] invalid modifier1")
            return None
        try:
            plain = _crypt(legion.cipher, buf[4:], False)
        except RemoteProtocolError:
            self._log("[uwsgi-legion] EVP_DecryptFinal_ex()")
            return None
        if len(plain) != header.pktsize:
            self._log("[uwsgi-legion] invalid packet size")
            return None
        msg = _PARSED.get(plain)  # every peer reads the same announce
        if msg is None:
            try:
                msg = parse_legion_plaintext(plain)
            except RemoteProtocolError:
                self._log("[uwsgi-legion] invalid packet")
                return None
            if len(_PARSED) > 4096:
                _PARSED.clear()
            _PARSED[plain] = msg
        return msg

    def _remove(self, legion: Legion, member: _Member, why: str) -> None:
        legion.members.remove(member)
        self._rebuild_scrolls(legion)
        self._record("legion.node_left", legion, name=member.name.decode("latin-1"),
                     valor=member.valor, why=why)

    def _rebuild_scrolls(self, legion: Legion) -> None:
        legion.scrolls = [legion.scroll] + [m.scroll for m in legion.members]

    def _check_nodes(self) -> None:
        """``legions_check_nodes``: members silent for more than the tolerance leave."""
        now = self._now()
        for legion in self.legions.values():
            for member in list(legion.members):
                if now - member.last_seen > self.tolerance:
                    self._log(f"[uwsgi-legion] {_kind(member)}: "
                              f"{_text(member.name)} valor: {member.valor} uuid: "
                              f"{_text(member.uuid)} left Legion {legion.name}")
                    self._remove(legion, member, "silent")
                    self._hooks(legion, "node_left")

    # -- the election ----------------------------------------------------------------------------
    def _candidate(self, legion: Legion) -> _Member | None:
        """``uwsgi_legion_get_lord``: the best member if one beats this instance."""
        best_valor, best_uuid = legion.valor & _U64, legion.uuid
        best: _Member | None = None
        for member in legion.members:
            if member.valor == 0:
                continue  # arbiters never rule
            if member.valor > best_valor or (member.valor == best_valor and
                                             member.uuid > best_uuid):
                best, best_valor, best_uuid = member, member.valor, member.uuid
        if (legion.valor > 0 and legion.lord_valor == 0) or best_valor != legion.lord_valor \
                or best_uuid != legion.lord_uuid:
            legion.changed = True
        legion.lord_valor, legion.lord_uuid = best_valor, best_uuid
        if best is not None:
            legion.lord_scroll = best.scroll if len(best.scroll) <= self.scroll_max else b""
        return best

    def _elect(self, legion: Legion) -> None:
        """``legions_check_nodes_step2`` for one legion."""
        now = self._now()
        i_am_the_best = False
        best = self._candidate(legion)
        if best is not None:
            best_valor, best_uuid = best.valor, best.uuid
        elif legion.valor > 0 and now > legion.suspended_til:
            best_valor, best_uuid, i_am_the_best = legion.valor & _U64, legion.uuid, True
        else:
            best_valor, best_uuid = 0, NO_UUID
        checksum = _checksum(legion.valor, legion.uuid)
        for member in legion.members:
            checksum += member.weight
        checksum &= _U64
        if checksum != legion.checksum:
            legion.changed = True
        legion.checksum = checksum
        votes = 1
        for member in legion.members:
            if member.checksum != checksum or member.lord_valor != best_valor or \
                    member.lord_uuid != best_uuid:
                votes = 0
                break
            votes += 1
        if votes > 0 and votes >= legion.quorum:
            if not legion.joined:
                self._hooks(legion, "join")
                legion.joined = True
            if legion.changed:
                self._report_quorum(legion, best_valor, best_uuid, votes)
                legion.changed = False
            if i_am_the_best:
                if not legion.i_am_the_lord:
                    self._become_lord(legion)
            elif legion.i_am_the_lord:
                self._log(f"[uwsgi-legion] a new Lord (valor: {legion.lord_valor} uuid: "
                          f"{_text(legion.lord_uuid)}) raised for Legion "
                          f"{legion.name}...")
                if legion.lord_scroll:
                    self._log("*********** The New Lord Scroll ***********")
                    self._log(legion.lord_scroll.decode("latin-1"))
                    self._log("*********** End of the New Lord Scroll ***********")
                self._unlord(legion)
        elif 0 < votes < legion.quorum and now - legion.last_warning >= 60:
            self._log(f"[uwsgi-legion] no quorum: only {votes} vote(s) for Legion "
                      f"{legion.name}, {legion.quorum} needed to elect a Lord")
            self._record("legion.no_quorum", legion, votes=votes, quorum=legion.quorum)
            if legion.i_am_the_lord:
                self._log(f"[uwsgi-legion] i cannot be The Lord of The Legion {legion.name} "
                          f"without a quorum ...")
                self._unlord(legion)
            legion.last_warning = now

    def _become_lord(self, legion: Legion) -> None:
        self._log(f"[uwsgi-legion] attempting to become the Lord of the Legion {legion.name}")
        for action in legion.hooks.get("lord", ()):
            ret = self._call(legion, "lord", action)
            if ret:
                self._log(f"[uwsgi-legion] ERROR, lord hook returned: {ret}")
                if self.death_on_lord_error:
                    legion.dead = True
                    self._announce(legion)
                    legion.suspended_til = self._now() + self.death_on_lord_error
                    self._log(f'[uwsgi-legion] suspending myself from Legion "{legion.name}" '
                              f"for {self.death_on_lord_error} seconds")
                    self._record("legion.suspended", legion,
                                 seconds=self.death_on_lord_error)
                    return
        legion.lord_scroll = legion.scroll if len(legion.scroll) <= self.scroll_max else b""
        self._log(f"[uwsgi-legion] i am now the Lord of the Legion {legion.name}")
        legion.i_am_the_lord = self._now()
        self._record("legion.lord", legion, uuid=legion.uuid.decode())
        self._announce(legion)  # the old Lord learns it sooner

    def _unlord(self, legion: Legion) -> None:
        self._hooks(legion, "unlord")
        legion.i_am_the_lord = 0
        self._record("legion.unlord", legion)

    def _report_quorum(self, legion: Legion, best_valor: int, best_uuid: bytes,
                       votes: int) -> None:
        self._log(f"[uwsgi-legion] --- WE HAVE QUORUM FOR LEGION {legion.name} !!! (valor: "
                  f"{best_valor} uuid: {_text(best_uuid)} checksum: "
                  f"{legion.checksum} votes: {votes}) ---")
        for m in legion.members:
            self._log(f"[uwsgi-legion-node] {_kind(m)}: {_text(m.name)} valor: "
                      f"{m.valor} uuid: {_text(m.uuid)} last_seen: {m.last_seen} "
                      f"vote_valor: {m.lord_valor} vote_uuid: {_text(m.lord_uuid)}")
        self._log("[uwsgi-legion] --- END OF QUORUM REPORT ---")
        self._record("legion.quorum", legion, lord_valor=best_valor,
                     lord_uuid=best_uuid.decode("latin-1"), votes=votes,
                     checksum=legion.checksum)

    # -- hooks ---------------------------------------------------------------------------------------
    def _hooks(self, legion: Legion, phase: str) -> None:
        for action in legion.hooks.get(phase, ()):
            ret = self._call(legion, phase, action)
            if ret:
                self._log(f"[uwsgi-legion] ERROR, {phase} hook returned: {ret}")

    def _call(self, legion: Legion, phase: str, action: str) -> int:
        """``uwsgi_legion_action_call``: log, then run one action; its return code."""
        kind, _colon, arg = action.partition(":")
        if kind not in _ACTIONS:
            self._log(f'[uwsgi-legion] ERROR unable to find legion_action "{kind}"')
            return -1
        self._log(f"[uwsgi-legion] (phase: {phase} legion: {legion.name}) calling {action}")
        self._record("legion.hook", legion, phase=phase, action=action)
        if kind == "log":
            self._log(arg)
        elif kind == "signal":
            signals = self.inst.subsystems.get("signals")
            if signals is not None:
                self.inst.kernel.call_soon(signals.master_read, _atoi(arg) & 0xFF)
        elif kind == "alarm" and " " not in arg:
            self._log("invalid alarm action syntax, must be: <alarm> <msg>")
            return -1
        return 0

    # -- the end --------------------------------------------------------------------------------------
    def reload_begins(self) -> None:
        """A graceful or brutal reload: ``dead`` announced, the thread returns."""
        if self.running:
            self.announce_death()
            self._stop()

    def close(self) -> None:
        """The instance stops (``uwsgi_legion_atexit`` in the master): death hooks, then
        ``dead`` - unless the master was killed, or a reload already said it."""
        if not self.running:
            return
        if self.inst.master is not None and self.inst.master.alive is not False:
            for legion in self.legions.values():
                self._hooks(legion, "death")
            self.announce_death()
        self._stop()

    def _stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        net = self._network
        if net is not None:
            for legion in self.legions.values():
                port = legion.addr.rpartition(":")[2]
                if port.isdigit():
                    net.unbind_udp(self.inst.node, int(port))


# -- helpers ----------------------------------------------------------------------------------------
def _text(raw: bytes) -> str:
    """What ``%.*s`` prints of ``raw``: up to its first NUL."""
    return raw.partition(b"\0")[0].decode("latin-1")


def _kind(member: _Member) -> str:
    return "node" if member.valor > 0 else "arbiter"


def _checksum(valor: int, uuid: bytes) -> int:
    return valor + sum(uuid)


def _atoi(text: str) -> int:
    """``atoi``/``strtol(text, NULL, 10)``: the leading integer, 0 without one."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def _uuid4(bits: int) -> bytes:
    """A random (version 4) UUID as libuuid's ``uuid_unparse`` writes it."""
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}".encode()


#: Encryption and decryption memoised: every node of a cluster encrypts its announce
#: once per round and its peers decrypt the same bytes (a fresh EVP init per packet
#: makes equal plaintexts equal ciphertexts), so each is computed once.
_CRYPT: dict[tuple[LegionCipher, bytes, bool], bytes] = {}
#: Announces parsed, by plaintext (values are frozen).
_PARSED: dict[bytes, LegionAnnounce] = {}


def _crypt(cipher: LegionCipher, data: bytes, encrypt: bool) -> bytes:
    key = (cipher, data, encrypt)
    out = _CRYPT.get(key)
    if out is None:
        if len(_CRYPT) > 4096:
            _CRYPT.clear()
        out = _CRYPT[key] = cipher.encrypt(data) if encrypt else cipher.decrypt(data)
    return out
