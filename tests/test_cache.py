"""The cache subsystem (simuwsgi/subsystems/cache.py) against uWSGI 2.0.30's rules."""
from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import simuwsgi
from simuwsgi import Simulation
from simuwsgi.subsystems.cache import djb33x

import _diff
from _sim import b, run, start

APP = "def application(e, sr):\n    sr('200 OK', [])\n    return [b'']\n"


def sim_with(tmp_path, *options):
    (tmp_path / "app.py").write_text(APP)
    return Simulation(["--master", *options, "--wsgi-file", "app.py"], app_dir=tmp_path)


def test_items_n_holds_n_minus_1_and_full_log(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=x,items=3") as sim:
        u = sim.uwsgi
        assert [u.cache_set(k, b"v") for k in "abc"] == [True, True, None]
        assert sim.log.count('*** DANGER cache "x" is FULL !!! ***') == 1
        assert sim.trace.count("cache.full") == 1


def test_ignore_full_suppresses_the_log(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=x,items=2,ignore_full=1") as sim:
        assert sim.uwsgi.cache_set("a", b"1") and sim.uwsgi.cache_set("b", b"2") is None
        assert not any("FULL" in line for line in sim.log)


@pytest.mark.parametrize("key", ["s", b"s"], ids=["parsed", "fast-path"])
def test_first_key_takes_the_top_slot_and_stale_bytes_feed_math(tmp_path, key):
    def plus_one(raw):
        return (int.from_bytes(raw, "little") + 1).to_bytes(8, "little")

    with sim_with(tmp_path, "--cache", "5") as sim:
        u = sim.uwsgi
        cache = sim.inst.subsystems["cache"].default
        long_key = b"long" if isinstance(key, bytes) else "long"
        u.cache_set(long_key, b"ABCDEFGH")
        assert cache.slots[b"long"] == 4
        u.cache_del(long_key)
        u.cache_set(key, b"1")          # reuses slot 4: bytes 1..7 are still "BCDEFGH"
        assert cache.slots[b"s"] == 4
        u.cache_inc(key)
        assert u.cache_get(key) == plus_one(b"1BCDEFGH")
        u.cache_del(key)
        u.cache_set(key, b"abcdefghij")
        u.cache_update(key, b"2")       # a short value over a long one keeps its tail
        u.cache_inc(key)
        assert u.cache_get(key) == plus_one(b"2bcdefgh")
        u.cache_update(key, b"\xff" * 8)
        u.cache_inc(key)                # wraps to a zero counter...
        u.cache_update(key, b"3")       # ...whose bytes a short value keeps
        u.cache_inc(key)
        assert u.cache_get(key) == plus_one(b"3" + bytes(7))


def test_math_semantics(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        assert u.cache_dec("a", 5) and u.cache_get("a") == (-5).to_bytes(8, "little", signed=True)
        assert u.cache_div("a", 2) and u.cache_num("a") == -2   # C truncates toward zero
        assert u.cache_div("a", 0) and u.cache_num("a") == 0
        u.cache_set("big", (2**63 - 1).to_bytes(8, "little"))
        u.cache_inc("big")
        assert u.cache_num("big") == -(2**63)
        assert u.cache_mul("z") and u.cache_num("z") == 0
        with pytest.raises(OverflowError):
            u.cache_inc("a", 2**63)


def test_math_keeps_the_expiry_and_update_resets_it(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        cache = sim.inst.subsystems["cache"].default
        now = int(sim.wall)
        u.cache_inc("n", 1, 100)
        assert cache.expires.get(b"n", 0) == now + 100
        u.cache_inc("n", 1, 5)
        assert cache.expires.get(b"n", 0) == now + 100
        u.cache_update("n", b"x")
        assert cache.expires.get(b"n", 0) == 0


def test_expired_items_stay_until_the_sweeper(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        u.cache_set("t", b"v", 1)
        sim.advance(2.5)
        assert u.cache_get("t") == b"v" and u.cache_set("t", b"w") is None
        assert u.cache_keys() == [b"t"]
        sim.advance(0.5)                 # the sweeper runs every 3 s from the master's start
        assert u.cache_get("t") is None
        assert sim.trace.count("cache.sweep") == 1


def test_idle_simulation_has_no_sweeper_event(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        sim.uwsgi.cache_set("forever", b"v")
        assert sim.kernel.peek() is None
        sim.uwsgi.cache_set("t", b"v", 1)
        assert sim.kernel.peek() == 3.0
        sim.advance(3)
        assert sim.kernel.peek() is None


def test_cache_expire_freq_and_no_expire(tmp_path):
    with sim_with(tmp_path, "--cache", "10", "--cache-expire-freq", "7") as sim:
        sim.uwsgi.cache_set("t", b"v", 1)
        sim.advance(6.5)
        assert sim.uwsgi.cache_get("t") == b"v"
        sim.advance(0.5)
        assert sim.uwsgi.cache_get("t") is None
    with sim_with(tmp_path, "--cache", "10", "--cache-no-expire") as sim:
        sim.uwsgi.cache_set("t", b"v", 1)
        sim.advance(30)
        assert sim.uwsgi.cache_get("t") == b"v"


def test_negative_expires_is_already_expired(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        assert sim.uwsgi.cache_set("neg", b"v", -5)
        assert sim.uwsgi.cache_get("neg") == b"v"
        sim.advance(3)
        assert sim.uwsgi.cache_get("neg") is None


def test_lazy_expire_and_purge_lru_quirks(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=lz,items=10,lazy_expire=1",
                  "--cache2", "name=lru,items=3,purge_lru=1") as sim:
        u = sim.uwsgi
        u.cache_set("a", b"v", 1, "lz")
        sim.advance(0.5)
        assert u.cache_get("a", "lz") == b"v"
        sim.advance(1)
        assert u.cache_exists("a", "lz") is None
        # purge_lru stores expires unconverted and never sweeps it
        u.cache_set("e", b"v", 1, "lru")
        sim.advance(10)
        assert u.cache_get("e", "lru") == b"v"
        u.cache_set("f", b"v", 0, "lru")
        u.cache_get("e", "lru")
        u.cache_set("g", b"v", 0, "lru")     # full: "f" is least recently used
        assert sorted(u.cache_keys("lru")) == [b"e", b"g"]
        assert 'LRU item will be purged from cache "lru"' in sim.log


def test_sweep_on_full_and_clear_on_full(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=s,items=3,sweep_on_full=10,no_expire=1",
                  "--cache2", "name=c,items=3,clear_on_full=1") as sim:
        u = sim.uwsgi
        u.cache_set("a", b"1", 1, "s")
        u.cache_set("b", b"2", 0, "s")
        sim.advance(2)
        assert u.cache_set("c", b"3", 0, "s")   # full -> sweep frees "a" -> retry works
        assert sorted(u.cache_keys("s")) == [b"b", b"c"]
        u.cache_set("a", b"1", 0, "c")
        u.cache_set("b", b"1", 0, "c")
        assert u.cache_set("c", b"1", 0, "c")   # full -> everything cleared -> stored
        assert u.cache_keys("c") == [b"c"]


def test_bitmap_cache_needs_contiguous_blocks(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=bm,items=4,blocks=4,blocksize=10,bitmap=1") as sim:
        u = sim.uwsgi
        assert u.cache_set("big", b"x" * 40, 0, "bm")       # all 4 blocks
        assert u.cache_set("more", b"y", 0, "bm") is None
        u.cache_del("big", "bm")
        assert u.cache_set("a", b"a" * 15, 0, "bm")          # 2 blocks
        assert u.cache_set("b", b"b" * 10, 0, "bm")          # 1 block
        assert u.cache_update("a", b"c" * 15, 0, "bm") is None  # needs 2 new blocks first
        assert u.cache_get("a", "bm") == b"a" * 15
        assert u.cache_set("x", b"x" * 41, 0, "bm") is None  # > blocksize*blocks


def test_bitmap_flag_is_on_when_present(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=bm,items=2,blocks=4,blocksize=10,bitmap=0") as sim:
        assert sim.inst.subsystems["cache"].by_name["bm"].bitmap
        assert sim.uwsgi.cache_set("k", b"x" * 40, 0, "bm")


def test_keys_order_is_hash_bucket_order(tmp_path):
    with sim_with(tmp_path, "--cache2", "name=h,items=20,hashsize=7") as sim:
        keys = [b"k%d" % i for i in range(12)] + [b"\xff\x80"]
        for k in keys:
            sim.uwsgi.cache_set(k, b"v", 0, "h")
        expected = sorted(keys, key=lambda k: (djb33x(k) % 7, keys.index(k)))
        assert sim.uwsgi.cache_keys("h") == expected
    assert djb33x(b"") == 5381 and djb33x(b"a") == (5381 * 33) ^ 97


def test_no_cache_at_all(tmp_path):
    with sim_with(tmp_path) as sim:
        u = sim.uwsgi
        assert u.cache_set("a", b"b") is None and u.cache_get("a") is None
        assert u.cache_clear() is None and u.cache_num("a") == 0
        with pytest.raises(ValueError, match="no local uWSGI cache available"):
            u.cache_keys()


def test_remote_cache_without_network_is_not_simulated(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        with pytest.raises(simuwsgi.NotSimulatedError, match="name@host:port"):
            sim.uwsgi.cache_get("k", "other@127.0.0.1:3031")
        with pytest.raises(ValueError):
            sim.uwsgi.cache_keys("other@127.0.0.1:3031")


def test_remote_cache_goes_to_the_network(tmp_path):
    calls = []

    class Net:
        def remote_cache(self, server, name, cmd, key, value, expires):
            calls.append((server, name, cmd, key, value, expires))
            return b"\x07" + bytes(7) if cmd == "get" else True

    with sim_with(tmp_path, "--cache", "10") as sim:
        sim.inst.subsystems["net"] = Net()
        assert sim.uwsgi.cache_inc("k", 3, 0, "c@n:1") is True
        assert sim.uwsgi.cache_num("k", "@n:1") == 7
    assert calls[0] == ("n:1", "c", "update", b"k", (3).to_bytes(8, "little"), 0)
    assert calls[1][:3] == ("n:1", "", "get")


def test_cache_is_shared_between_processes_and_survives_respawn(tmp_path):
    sim = start(tmp_path, "--processes", "2", "--cache", "10")
    with sim:
        run(sim, "uwsgi.cache_set('k', b'w')")
        sim.kill("worker1")
        sim.kill("worker2")
        assert run(sim, "out = uwsgi.cache_get('k')") == b(b"w")


def test_cache_is_lost_on_reload(tmp_path):
    sim = start(tmp_path, "--cache", "10")
    with sim:
        run(sim, "uwsgi.cache_set('k', b'w')")
        sim.reload()
        sim.advance(1)
        assert run(sim, "out = uwsgi.cache_get('k')") is None


# -- a model of uWSGI's cache rules, driven against the simulator ---------------------
ITEMS = 5
FREQ = 3


class CacheModel(RuleBasedStateMachine):
    """Independent model: LIFO slots with stale block bytes, absolute expiries,
    ``next_scan``, a sweeper every FREQ s from the start, no overwrite on set."""

    @initialize()
    def boot(self):
        import tempfile
        from pathlib import Path

        d = self.dir = Path(tempfile.mkdtemp())
        (d / "app.py").write_text(APP)
        self.sim = Simulation(["--master", "--cache2", f"name=m,items={ITEMS}",
                               "--wsgi-file", "app.py"], app_dir=d).start()
        self.u = self.sim.uwsgi
        self.t = 0.0
        self.start_wall = int(self.sim.wall)
        self.items = {}            # key -> [value, expires, slot]
        self.free = list(range(1, ITEMS))
        self.blocks = {}           # slot -> bytearray
        self.next_scan = 0

    def teardown(self):
        import shutil

        if hasattr(self, "sim"):
            self.sim.close()
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def now(self):
        return self.start_wall + int(self.t)

    def _write(self, slot, value):
        blk = self.blocks.setdefault(slot, bytearray(8))
        if len(blk) < len(value):
            blk.extend(bytes(len(value) - len(blk)))
        blk[:len(value)] = value

    def _expiry(self, e):
        if not e:
            return 0
        exp = self.now() + e
        if not self.next_scan or self.next_scan > exp:
            self.next_scan = exp
        return exp

    def _store(self, key, value, e, update):
        if key in self.items:
            if not update:
                return None
            it = self.items[key]
            it[1] = self._expiry(e)
            it[0] = value
            self._write(it[2], value)
            return True
        if not self.free:
            return None
        slot = self.free.pop()
        self.items[key] = [value, self._expiry(e), slot]
        self._write(slot, value)
        return True

    keys = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"])
    values = st.binary(min_size=1, max_size=12)
    expires = st.sampled_from([0, 0, 1, 2, 5])

    def call(self, name, short, *args):
        """``m`` is the first cache: with ``short`` the call names no cache (and drops
        a default expiry), so it takes the facade's fast path for the default cache."""
        fn = getattr(self.u, name)
        return fn(*args) if short else fn(*args, "m")

    short = st.booleans()

    @rule(key=keys, value=values, e=expires, short=short)
    def cache_set(self, key, value, e, short):
        args = (key, value) if short and not e else (key, value, e)
        assert self.call("cache_set", short, *args) == self._store(key, value, e, False)

    @rule(key=keys, value=values, e=expires, short=short)
    def cache_update(self, key, value, e, short):
        args = (key, value) if short and not e else (key, value, e)
        assert self.call("cache_update", short, *args) == self._store(key, value, e, True)

    @rule(key=keys, short=short)
    def cache_get(self, key, short):
        it = self.items.get(key)
        assert self.call("cache_get", short, key) == (it[0] if it else None)

    @rule(key=keys, short=short)
    def cache_exists(self, key, short):
        assert self.call("cache_exists", short, key) == (True if key in self.items else None)

    @rule(key=keys, short=short)
    def cache_del(self, key, short):
        it = self.items.pop(key, None)
        if it is not None:
            self.free.append(it[2])
        assert self.call("cache_del", short, key) == (True if it else None)

    @rule(key=keys, delta=st.integers(-(2**63), 2**63 - 1), e=expires, short=short)
    def cache_inc(self, key, delta, e, short):
        if short:  # cache_inc(key): delta 1, no expiry
            delta, e = 1, 0
        args = (key,) if short else (key, delta, e)
        it = self.items.get(key)
        if it is None:
            if not self.free:
                assert self.call("cache_inc", short, *args) is None
                return
            slot = self.free.pop()
            num = delta
            self.items[key] = it = [b"", self._expiry(e), slot]
        else:
            blk = self.blocks[it[2]]
            num = int.from_bytes(bytes(blk[:8]), "little", signed=True) + delta
        raw = (num & (2**64 - 1)).to_bytes(8, "little")
        it[0] = raw
        self._write(it[2], raw)
        assert self.call("cache_inc", short, *args) is True

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.5]))
    def advance(self, dt):
        old = self.t
        self.t += dt
        k = int(old // FREQ) + 1
        while k * FREQ <= self.t:
            wall = self.start_wall + k * FREQ
            if self.next_scan and self.next_scan <= wall:
                self.next_scan = 0
                for key, it in sorted(self.items.items(), key=lambda kv: kv[1][2]):
                    if it[1] and it[1] <= wall:
                        del self.items[key]
                        self.free.append(it[2])
                    elif it[1] and (not self.next_scan or self.next_scan > it[1]):
                        self.next_scan = it[1]
            k += 1
        self.sim.advance(dt)

    @invariant()
    def same_keys(self):
        if hasattr(self, "u"):
            assert sorted(self.u.cache_keys("m")) == sorted(self.items)


CacheModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30,
                                        deadline=None)
TestCacheModel = CacheModel.TestCase


# -- differential against real uWSGI ------------------------------------------------------
@pytest.mark.real
@pytest.mark.parametrize("endpoint", ["/cache", "/cache_errors", "/cache_expire"])
def test_cache_matches_real_uwsgi(endpoint):
    _diff.compare(endpoint)


def test_fast_paths_refuse_keywords_and_bad_arity_like_cpython(tmp_path):
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        for call, message in [
            (lambda: u.cache_get(key=b"k"), "cache_get() takes no keyword arguments"),
            (lambda: u.cache_set(b"k", value=b"v"), "cache_set() takes no keyword arguments"),
            (lambda: u.cache_del(key=b"k"), "cache_del() takes no keyword arguments"),
            (lambda: u.cache_get(), "cache_get() takes at least 1 argument (0 given)"),
            (lambda: u.cache_set(b"k"), "cache_set() takes at least 2 arguments (1 given)"),
        ]:
            with pytest.raises(TypeError) as exc:
                call()
            assert str(exc.value) == message
        assert u.cache_set(b"k", b"v") is True and u.cache_get(b"k") == b"v"
        assert u.cache_del(b"k") is True and u.cache_get(b"k") is None


def _random_program(seed: int, length: int = 80) -> str:
    """A random sequence of cache calls (no time passing), as code for the exec app."""
    import random

    rng = random.Random(seed)
    keys = [repr(k) for k in (b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", "s")]
    values = [repr(v) for v in (b"x", b"yy", b"\x01\x00\x00\x00\x00\x00\x00\x00", b"", b"z" * 40)]
    lines = ["out = []", "u = uwsgi"]
    for _ in range(length):
        k = rng.choice(keys)
        op = rng.choice(["set", "update", "get", "del", "exists", "inc", "dec", "mul",
                         "div", "num", "clear", "keys"])
        if op in ("set", "update"):
            args = f"{k}, {rng.choice(values)}" + (f", {rng.choice([0, 30])}" if rng.random() < 0.3 else "")
        elif op in ("inc", "dec", "mul", "div"):
            args = k + (f", {rng.choice([0, 1, 3, -2, 2**62])}" if rng.random() < 0.6 else "")
        elif op == "clear":
            if rng.random() > 0.1:
                continue
            args = ""
        elif op == "keys":
            lines.append("out.append(sorted(u.cache_keys()))")
            continue
        else:
            args = k
        lines.append(f"out.append(u.cache_{op}({args}))")
    return "\n".join(lines)


#: Stale block bytes through the one-argument calls (the fast paths): a short value
#: in a freed slot, a short update over a long value, a short update over a counter.
_STALE_BYTES_PROGRAM = """out = []
u = uwsgi
u.cache_clear()
u.cache_set(b"long", b"ABCDEFGH")
u.cache_del(b"long")
u.cache_set(b"s", b"1")
u.cache_inc(b"s")
out.append(u.cache_get(b"s"))
u.cache_del(b"s")
u.cache_set(b"s", b"abcdefghij")
u.cache_update(b"s", b"2")
u.cache_inc(b"s")
out.append(u.cache_get(b"s"))
u.cache_update(b"s", b"\\xff" * 8)
u.cache_inc(b"s")
u.cache_update(b"s", b"3")
u.cache_inc(b"s")
out.append(u.cache_get(b"s"))"""


@pytest.mark.real
def test_random_cache_sequences_agree_with_real_uwsgi(tmp_path):
    """Random call sequences (seeded) replayed under real uWSGI and the simulation."""
    from _sim import EXEC_APP

    from simuwsgi.modes.real import RealUwsgi

    options = ["--master", "--cache2", "name=default,items=7,blocksize=32",
               "--wsgi-file", "app.py"]
    (tmp_path / "app.py").write_text(EXEC_APP)
    programs = [_random_program(seed) for seed in range(8)] + [_STALE_BYTES_PROGRAM]
    with RealUwsgi(options, app_dir=tmp_path) as real:
        expected = [real.request("POST", "/", body=p.encode()).body for p in programs]
    with Simulation(options, app_dir=tmp_path) as sim:
        got = [sim.request("POST", "/", body=p.encode()).body for p in programs]
    for program, want, have in zip(programs, expected, got):
        assert have == want, program


@pytest.mark.parametrize("explicit", [False, True], ids=["fast-path", "full-parse"])
def test_keys_over_64k_are_truncated_to_their_16_bit_length(tmp_path, explicit):
    """The C API passes key lengths as uint16: a 65546-byte key is its first 10 bytes.
    The one-argument calls (fast paths) must agree with the fully parsed ones."""
    huge = b"0123456789" + b"x" * 0x10000
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        extra = (0,) if explicit else ()
        assert u.cache_set(huge, b"v1", *extra) is True
        assert u.cache_get(b"0123456789") == b"v1"
        assert u.cache_exists(huge) is True and u.cache_get(huge) == b"v1"
        assert u.cache_update(huge, b"v2", *extra) is True
        assert u.cache_get(b"0123456789") == b"v2"
        assert u.cache_del(huge) is True and u.cache_exists(b"0123456789") is None
        assert u.cache_inc(huge) is True and u.cache_num(b"0123456789") == 1


def test_one_argument_calls_match_the_parsed_ones(tmp_path):
    """The fast paths of update/exists/inc/del give what the full parse gives."""
    with sim_with(tmp_path, "--cache", "10") as sim:
        u = sim.uwsgi
        assert u.cache_update(b"k", b"") is None and u.cache_update(b"k", b"", 0) is None
        assert u.cache_update(b"k", b"a") is True and u.cache_get(b"k") == b"a"
        assert u.cache_update(b"k", b"bb") is True and u.cache_get(b"k") == b"bb"
        assert u.cache_update(b"k", b"c", 0) is True and u.cache_get(b"k") == b"c"
        assert u.cache_exists(b"nope") is None and u.cache_del(b"nope") is None
        assert u.cache_inc(b"n") is True and u.cache_inc(b"n", 1) is True
        assert u.cache_num(b"n") == 2 and u.cache_dec(b"n") is True and u.cache_num(b"n") == 1


# -- the optional C accelerator of the fast paths (subsystems/_ccache.c) -----------------
def test_the_cache_accelerator_is_built_here():
    # The machines this project runs on have a compiler: a silent fallback would hide
    # a broken build. SIMUWSGI_PURE_PYTHON=1 runs the suite on the Python functions.
    import os

    from simuwsgi.subsystems import _ccache, cache

    assert _ccache.counter is not None
    assert (cache._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))


def test_pure_python_cache_functions_are_forced_by_the_environment():
    import os
    import subprocess
    import sys

    code = "from simuwsgi.subsystems import cache; print(cache._c is None)"
    env = dict(os.environ, SIMUWSGI_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "True"


#: Calls that take each fast path and every way of leaving it: missing and present
#: keys, short values over longer ones (stale block bytes), counters still in bytes,
#: wrap-around both ways, keywords, str keys, no or extra arguments, empty values,
#: a full cache, a named cache.
_FAST_PATH_PROGRAM = """out = []
u = uwsgi
for call in [
    lambda: u.cache_inc(b"n"), lambda: u.cache_inc(b"n"), lambda: u.cache_dec(b"n"),
    lambda: u.cache_dec(b"z"), lambda: u.cache_dec(b"z"), lambda: u.cache_inc(b"z"),
    lambda: u.cache_set(b"s", b"7"), lambda: u.cache_inc(b"s"), lambda: u.cache_get(b"s"),
    lambda: u.cache_set(b"l", b"\\xfe" + b"\\xff" * 9), lambda: u.cache_inc(b"l"),
    lambda: u.cache_inc(b"l"), lambda: u.cache_get(b"l"), lambda: u.cache_num(b"l"),
    lambda: u.cache_update(b"n", b"x"), lambda: u.cache_inc(b"n"), lambda: u.cache_get(b"n"),
    lambda: u.cache_inc("n"), lambda: u.cache_inc(b"n", 5), lambda: u.cache_dec(b"n", 2, 0),
    lambda: u.cache_inc(b"n", 1, 0, "other"), lambda: u.cache_inc(b"n", 1, 0, "nope"),
    lambda: u.cache_inc(key=b"n"), lambda: u.cache_dec(b"n", delta=1), lambda: u.cache_inc(),
    lambda: u.cache_inc(1), lambda: u.cache_inc(b"n", 1, 2, "default", 5),
    lambda: u.cache_set(b"a", b"ABCDEFGHIJ"), lambda: u.cache_set(b"a", b"x"),
    lambda: u.cache_update(b"a", b"12345678"), lambda: u.cache_update(b"a", b"xy"),
    lambda: u.cache_inc(b"a"), lambda: u.cache_get(b"a"), lambda: u.cache_del(b"a"),
    lambda: u.cache_set(b"b", b"q"), lambda: u.cache_inc(b"b"), lambda: u.cache_get(b"b"),
    lambda: u.cache_update(b"c", b"0123456789"), lambda: u.cache_update(b"c", b""),
    lambda: u.cache_set(b"e", b"v", 30), lambda: u.cache_update(b"e", b"longer than 8"),
    lambda: u.cache_del(b"e"), lambda: u.cache_del(b"e"), lambda: u.cache_set(b"", b"v"),
    lambda: u.cache_set(b"k", b""), lambda: u.cache_set(b"k", b"v" * 17),
    lambda: u.cache_set(b"k", value=b"v"), lambda: u.cache_del(key=b"k"),
    lambda: u.cache_update("c", b"str key"), lambda: u.cache_del("c"), lambda: u.cache_set(b"k"),
    lambda: u.cache_del(b"n", "other"), lambda: u.cache_set(b"k", b"v", 0, "other"),
    lambda: [u.cache_inc(b"k%d" % i) for i in range(12)],
    lambda: [u.cache_set(b"f%d" % i, b"v") for i in range(3)],
    lambda: [u.cache_del(b"k%d" % i) for i in range(12)],
    lambda: [u.cache_set(b"g%d" % i, b"%d" % i) for i in range(12)],
    lambda: u.cache_num(b"n"), lambda: u.cache_num(b"z"), lambda: sorted(u.cache_keys()),
    lambda: [u.cache_get(k) for k in sorted(u.cache_keys())],
    lambda: [f.__name__ for f in (u.cache_set, u.cache_update, u.cache_del, u.cache_inc,
                                  u.cache_dec)],
]:
    try:
        out.append(call())
    except Exception as exc:
        out.append([type(exc).__name__, str(exc)])
"""


def _fast_path_runs(tmp_path, monkeypatch, *options, programs=(_FAST_PATH_PROGRAM,)):
    """The programs' outputs, trace digest and log with the accelerator and without."""
    from simuwsgi.subsystems import _ccache, cache

    outs = []
    for accelerator in (_ccache, None):
        monkeypatch.setattr(cache, "_c", accelerator)
        sim = start(tmp_path, *options)
        try:
            names = {type(getattr(sim.uwsgi, f"cache_{op}")).__name__
                     for op in ("set", "update", "del", "inc", "dec")}
            outs.append((names, [run(sim, p) for p in programs], sim.trace.digest(),
                         list(sim.log)))
        finally:
            sim.close()
    return outs


def test_cache_accelerator_gives_what_the_python_functions_give(tmp_path, monkeypatch):
    outs = _fast_path_runs(tmp_path, monkeypatch, "--cache2", "name=default,items=10,blocksize=16",
                           "--cache2", "name=other,items=4")
    assert outs[0][0] == {"builtin_function_or_method"} and outs[1][0] == {"function"}
    assert outs[0][1:] == outs[1][1:]
    result = outs[0][1][0]
    assert result[:6] == [True, True, True, True, True, True]
    assert result[-1] == ["cache_set", "cache_update", "cache_del", "cache_inc", "cache_dec"]
    assert ["TypeError", "cache_inc() takes no keyword arguments"] in result
    assert ["TypeError", "cache_del() takes no keyword arguments"] in result


@pytest.mark.parametrize("geometry", ["bitmap=1,blocks=40", "blocksize=4", "purge_lru=1"])
def test_other_geometries_keep_the_python_functions(tmp_path, monkeypatch, geometry):
    outs = _fast_path_runs(tmp_path, monkeypatch,
                           "--cache2", f"name=default,items=10,blocksize=16,{geometry}")
    assert "builtin_function_or_method" not in outs[0][0]
    assert outs[0][1:] == outs[1][1:]


def test_random_cache_sequences_same_with_and_without_the_accelerator(tmp_path, monkeypatch):
    programs = [_random_program(seed, 200) for seed in range(20)] + [_STALE_BYTES_PROGRAM]
    outs = _fast_path_runs(tmp_path, monkeypatch, "--cache2", "name=default,items=7,blocksize=32",
                           programs=programs)
    assert outs[0][0] == {"builtin_function_or_method"}
    assert outs[0][1:] == outs[1][1:]


def test_cache_full_fault_fails_the_fast_paths_too(tmp_path, monkeypatch):
    """A CacheFull window fails every set, update and math call, bytes keys included
    (the one-call fast paths once skipped the fault)."""
    from simuwsgi.faults import CacheFull
    from simuwsgi.subsystems import _ccache, cache

    program = ("out = [uwsgi.cache_set(b'k', b'v'), uwsgi.cache_update(b'k', b'12345678'),"
               " uwsgi.cache_inc(b'k'), uwsgi.cache_set(b'j', b'v'), uwsgi.cache_del(b'k')]")
    for accelerator in (_ccache, None):
        monkeypatch.setattr(cache, "_c", accelerator)
        sim = start(tmp_path, "--cache", "10")
        try:
            assert run(sim, "out = [uwsgi.cache_set(b'k', b'v')]") == [True]
            sim.apply([CacheFull(at=1, duration=2)])
            sim.run_until(1.5)
            assert run(sim, program) == [None, None, None, None, True]
            assert sim.trace.count("cache.full") == 4
            sim.run_until(4)
            assert run(sim, program) == [True, True, True, True, True]
        finally:
            sim.close()


def test_cache_full_fault_outlives_a_reload(tmp_path):
    from simuwsgi.faults import CacheFull

    sim = start(tmp_path, "--cache", "10")
    try:
        sim.apply([CacheFull(at=1, duration=30)])
        sim.run_until(2)
        sim.uwsgi.reload()
        sim.run_until(5)
        assert sim.trace.count("instance.start", reload=True) == 1
        assert run(sim, "out = [uwsgi.cache_set(b'k', b'v'), uwsgi.cache_inc(b'n')]") == \
            [None, None]
    finally:
        sim.close()
