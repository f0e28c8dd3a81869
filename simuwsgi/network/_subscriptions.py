"""A router's subscription table: which backend nodes serve each key, and which is next.

Models ``core/subscription.c`` of uWSGI 2.0.30 (``uwsgi_add_subscribe_node``,
``uwsgi_get_subscribe_node``, ``uwsgi_remove_subscribe_node``, the ``wrr``/``lrc``/
``wlrc`` algorithms) and the unsubscribe branch of ``uwsgi_corerouter_manage_subscription``
(``plugins/corerouter/cr_common.c``); cluster.md §4.2:

* one pool per key (its hash slot, djb33x % 65535, is only shown in the ``new pool``
  line); a pool's nodes keep the order they first subscribed in;
* subscribe: a known address is refreshed (death mark cleared, ``last_check`` = now,
  cores/load/weight updated, weight 0 read as 1; modifier1/2 kept from the first
  announce); an unknown one is appended;
* unsubscribe: the node is death-marked and removed at once unless a session uses it
  (``reference`` > 0), then when that session ends;
* lookup (one per routed request): walking the list, a node not heard from for more
  than ``--subscription-tolerance`` seconds (default 17) is death-marked, a dead node
  no session uses is removed (the pool with its last node), and the algorithm is
  offered each live node; ``wrr`` takes the first with credit, and when none has any,
  gives every live node ``weight // min_weight`` credits and takes the *last* one;
* all times are the router node's ``uwsgi_now()`` (whole wall-clock seconds).

Left out: signed subscriptions, SNI keys, credential checks and the ``notify`` ack
(the datagram fields are decoded, then ignored), the slot list's "auto optimisation"
reordering (it changes only the C lookup's speed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..protocol import Subscription, subscription_hash

__all__ = ["ALGORITHMS", "SubscribedNode", "SubscriptionTable"]

ALGORITHMS = ("wrr", "lrc", "wlrc")


@dataclass(slots=True, eq=False)
class SubscribedNode:
    """One backend address in one key's pool (``struct uwsgi_subscribe_node``)."""

    key: bytes
    address: bytes
    modifier1: int
    modifier2: int
    cores: int
    load: int
    weight: int
    last_check: int
    wrr: int = 0
    reference: int = 0
    requests: int = 0
    last_requests: int = 0
    death_mark: bool = False
    failcnt: int = 0


class SubscriptionTable:
    """The pools of one router process (``ucr->subscriptions``).

    ``now()`` gives the router node's ``uwsgi_now()``; ``log(line)`` writes a line of
    the router's log; ``pid`` is the router process's pid (the log lines show it);
    ``name`` is the router's (``uWSGI fastrouter``, ``uWSGI http``).
    """

    def __init__(self, *, now: Callable[[], int], log: Callable[[str], None], pid: int,
                 name: str, tolerance: int = 17, algo: str = "wrr",
                 record: Callable[..., None] = lambda kind, **fields: None) -> None:
        if algo not in ALGORITHMS:
            # uwsgi_subscription_set_algo: anything unknown is wrr
            algo = "wrr"
        self.now = now
        self.log = log
        self.pid = pid
        self.name = name
        self.tolerance = tolerance
        self.algo = algo
        #: ``record(kind, **fields)``: a trace record of a pool's change.
        self.record = record
        self.pools: dict[bytes, list[SubscribedNode]] = {}

    # -- announces ----------------------------------------------------------------------
    def subscribe(self, sub: Subscription) -> SubscribedNode | None:
        """A subscribe datagram (cmd 0): the node added or refreshed (None: refused)."""
        if not 0 < len(sub.address) <= 0xFF or len(sub.key) > 0xFF:
            return None
        tag = f"[uwsgi-subscription for pid {self.pid}]"
        key, address = sub.key.decode("latin-1"), sub.address.decode("latin-1")
        pool = self.pools.get(sub.key)
        if pool is None:
            pool = self.pools[sub.key] = []
            self.log(f"{tag} new pool: {key} (hash key: {subscription_hash(sub.key)})")
        else:
            for node in pool:
                if node.address == sub.address:
                    node.death_mark = False
                    node.last_check = self.now()
                    node.cores, node.load = sub.cores, sub.load
                    node.weight = sub.weight or 1
                    node.last_requests = 0
                    return node
        node = SubscribedNode(key=sub.key, address=sub.address, modifier1=sub.modifier1,
                              modifier2=sub.modifier2, cores=sub.cores, load=sub.load,
                              weight=sub.weight or 1, last_check=self.now())
        pool.append(node)
        self.log(f"{tag} {key} => new node: {address}")
        self.record("subscription.add", key=key, address=address, weight=node.weight)
        return node

    def unsubscribe(self, sub: Subscription) -> None:
        """An unsubscribe datagram (cmd != 0) for a known node."""
        for node in self.pools.get(sub.key, ()):
            if node.address == sub.address:
                self.fail(node, f"[{self.name} pid {self.pid}]", "unsubscribed")
                return

    def fail(self, node: SubscribedNode, tag: str, why: str = "failed") -> None:
        """Death-mark ``node`` (an unsubscribe, a failed connection to it) and remove it
        if no session uses it; ``tag`` starts the ``marking ... as failed`` line."""
        if not node.death_mark:
            self.log(f"{tag} {node.key.decode('latin-1')} => marking "
                     f"{node.address.decode('latin-1')} as failed")
            self._dead(node, why)
        node.failcnt += 1
        node.death_mark = True
        if node.reference == 0:
            self._remove(node)

    def _dead(self, node: SubscribedNode, why: str) -> None:
        self.record("subscription.dead", key=node.key.decode("latin-1"),
                    address=node.address.decode("latin-1"), why=why)

    def release(self, node: SubscribedNode) -> None:
        """A session using ``node`` ended (``corerouter_close_peer``); a dead node is
        removed at the next lookup of its key."""
        node.reference -= 1

    def _remove(self, node: SubscribedNode) -> bool:
        """Remove ``node``; True when its pool went with it."""
        pool = self.pools.get(node.key)
        if pool is None or node not in pool:
            return False
        pool.remove(node)
        if not pool:
            del self.pools[node.key]
            return True
        return False

    # -- lookup -------------------------------------------------------------------------
    def lookup(self, key: bytes) -> SubscribedNode | None:
        """The node a request for ``key`` goes to (``uwsgi_get_subscribe_node``), its
        reference count taken; None when the key has no live node."""
        if len(key) > 0xFF:
            return None
        pool = self.pools.get(key)
        if pool is None:
            return None
        now = self.now()
        offer = getattr(self, f"_{self.algo}")
        for node in list(pool):
            if now - node.last_check > self.tolerance:
                if not node.death_mark:
                    self.log(f"[uwsgi-subscription for pid {self.pid}] "
                             f"{key.decode('latin-1')} => marking "
                             f"{node.address.decode('latin-1')} as failed (no announce "
                             f"received in {self.tolerance} seconds)")
                    self._dead(node, "silent")
                node.failcnt += 1
                node.death_mark = True
            if node.death_mark and node.reference == 0:
                if self._remove(node):
                    return None
                continue
            chosen = offer(pool, node)
            if chosen is not None:
                return chosen
        return offer(pool, None)

    @staticmethod
    def _wrr(pool: list[SubscribedNode], node: SubscribedNode | None) -> SubscribedNode | None:
        if node is not None:
            if not node.death_mark and node.wrr > 0:
                node.wrr -= 1
                node.reference += 1
                return node
            return None
        alive = [n for n in pool if not n.death_mark]
        if not alive:
            return None
        min_weight = min(n.weight for n in alive)
        for n in alive:
            n.wrr = n.weight // min_weight
        chosen = alive[-1]
        chosen.wrr -= 1
        chosen.reference += 1
        return chosen

    @staticmethod
    def _least(pool: list[SubscribedNode], load: Callable[[SubscribedNode], float]
               ) -> SubscribedNode | None:
        """lrc/wlrc: the live node with the least ``load``, walking the list; a node at
        0 is taken at once unless the next one is as free and as fresh."""
        chosen = None
        best: float = 0
        for i, node in enumerate(pool):
            if node.death_mark:
                continue
            ref = load(node)
            if best == 0 or ref < best:
                best = ref
                chosen = node
                nxt = pool[i + 1] if i + 1 < len(pool) else None
                if best == 0 and not (nxt is not None and load(nxt) <= ref
                                      and nxt.last_requests <= node.last_requests):
                    break
        if chosen is not None:
            chosen.reference += 1
        return chosen

    def _lrc(self, pool: list[SubscribedNode], node: SubscribedNode | None
             ) -> SubscribedNode | None:
        return None if node is not None else self._least(pool, lambda n: n.reference)

    def _wlrc(self, pool: list[SubscribedNode], node: SubscribedNode | None
              ) -> SubscribedNode | None:
        return None if node is not None else self._least(
            pool, lambda n: n.reference / n.weight)
