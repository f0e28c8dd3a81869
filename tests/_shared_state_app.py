"""Differential-test app for the shared-state API (cache, locks, sharedarea, queue, rpc).

Each endpoint performs a fixed sequence of operations and returns the JSON list of what
it observed (bytes as hex, exceptions as [type, message]). The same file runs under real
uWSGI and under simuwsgi with the same options.
"""
import json
import time

import uwsgi


def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return ["b", bytes(v).hex()]
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return v


def obs(fn, *args):
    try:
        return enc(fn(*args))
    except Exception as exc:  # noqa: BLE001
        return ["exc", type(exc).__name__, str(exc)]


def rpc_hello(*args):
    return b"hello:" + b",".join(args)


def rpc_empty(*args):
    return b""


def rpc_str(*args):
    return "text"


def rpc_raise(*args):
    raise RuntimeError("boom")


uwsgi.register_rpc("hello", rpc_hello)
uwsgi.register_rpc("empty", rpc_empty)
uwsgi.register_rpc("strret", rpc_str, 2)
uwsgi.register_rpc("raiser", rpc_raise)


def ep_cache():
    u = uwsgi
    r = []
    r.append(obs(u.cache_set, "k1", b"v1"))
    r.append(obs(u.cache_set, "k1", b"v2"))           # no overwrite
    r.append(obs(u.cache_get, b"k1"))
    r.append(obs(u.cache_update, "k1", b"v3"))
    r.append(obs(u.cache_get, "k1"))
    r.append(obs(u.cache_set, "e", b""))              # empty value
    r.append(obs(u.cache_set, "", b"x"))              # empty key
    r.append(obs(u.cache_set, "x" * 2049, b"x"))       # keysize
    r.append(obs(u.cache_set, "x" * 2048, b"x"))
    r.append(obs(u.cache_del, "x" * 2048))
    r.append(obs(u.cache_del, "nope"))
    r.append(obs(u.cache_exists, "k1"))
    r.append(obs(u.cache_exists, "nope"))
    # items=4 holds 3 keys
    r.append([obs(u.cache_set, "s%d" % i, b"x", 0, "small") for i in range(5)])
    r.append(sorted(k.decode() for k in u.cache_keys("small")))
    r.append(obs(u.cache_clear, "small"))
    r.append(obs(u.cache_keys, "small"))
    r.append(obs(u.cache_clear, "unknown"))
    r.append(obs(u.cache_get, "k1", "unknown"))
    r.append(obs(u.cache_keys, "unknown"))
    # counters
    r.append(obs(u.cache_inc, "n"))
    r.append(obs(u.cache_get, "n"))
    r.append(obs(u.cache_inc, "n", 41))
    r.append(obs(u.cache_num, "n"))
    r.append(obs(u.cache_dec, "n", 50))
    r.append(obs(u.cache_get, "n"))
    r.append(obs(u.cache_mul, "n", -3))
    r.append(obs(u.cache_num, "n"))
    r.append(obs(u.cache_div, "n", 2))
    r.append(obs(u.cache_num, "n"))
    r.append(obs(u.cache_div, "n", 0))
    r.append(obs(u.cache_num, "n"))
    r.append(obs(u.cache_dec, "m"))
    r.append(obs(u.cache_mul, "m2"))
    r.append(obs(u.cache_get, "m2"))
    r.append(obs(u.cache_inc, "w", 2 ** 63 - 1))
    r.append(obs(u.cache_inc, "w"))
    r.append(obs(u.cache_num, "w"))
    r.append(obs(u.cache_set, "s10", b"10"))
    r.append(obs(u.cache_inc, "s10"))
    r.append(obs(u.cache_get, "s10"))
    r.append(obs(u.cache_num, "s10"))
    r.append(obs(u.cache_inc, "mi", 1, 0, "mathy"))
    r.append(obs(u.cache_get, "mi", "mathy"))
    # LRU
    r.append([obs(u.cache_set, k, b"v", 0, "lru") for k in ("k0", "k1", "k2")])
    r.append(obs(u.cache_get, "k0", "lru"))
    r.append(obs(u.cache_set, "k3", b"v", 0, "lru"))
    r.append(sorted(k.decode() for k in u.cache_keys("lru")))
    for k in ("k1", "n", "m", "m2", "w", "s10"):
        u.cache_del(k)
    return r


def ep_cache_errors():
    u = uwsgi
    r = []
    r.append(obs(u.cache_set, "a", "str-value"))
    r.append(obs(u.cache_get, "a"))
    u.cache_del("a")
    r.append(obs(u.cache_get, 1))
    r.append(obs(u.cache_set, "a", bytearray(b"x")))
    r.append(obs(u.cache_set, "a", b"x", "5"))
    r.append(obs(u.cache_get, "a", b"default"))
    r.append(obs(u.cache_inc, "a", 2 ** 63))
    r.append(obs(u.cache_get))
    r.append(obs(u.cache_set, "a"))
    r.append(obs(u.cache_num, "nope"))
    try:
        u.cache_set("a", b"b", expires=5)
    except TypeError as exc:
        r.append(str(exc))
    return r


def ep_cache_expire():
    u = uwsgi
    r = []
    u.cache_del("t")
    r.append(obs(u.cache_set, "t", b"v", 1))
    r.append(obs(u.cache_set, "lz", b"v", 1, "lazy"))
    time.sleep(2.2)
    r.append(obs(u.cache_get, "t"))          # expired but not swept
    r.append(obs(u.cache_exists, "t"))
    r.append(obs(u.cache_set, "t", b"w"))    # still exists
    r.append("t" in [k.decode() for k in u.cache_keys()])
    r.append(obs(u.cache_update, "t", b"u"))  # resets expiry to never
    r.append(obs(u.cache_get, "t"))
    r.append(obs(u.cache_get, "lz", "lazy"))  # lazy: gone
    r.append(obs(u.cache_exists, "lz", "lazy"))
    u.cache_del("t")
    return r


def ep_locks():
    u = uwsgi
    r = []
    r.append(obs(u.is_locked))
    r.append(obs(u.lock))
    r.append(obs(u.is_locked))
    r.append(obs(u.is_locked, 0))
    r.append(obs(u.unlock))
    r.append(obs(u.is_locked))
    r.append(obs(u.unlock, 1))          # free lock: no-op
    r.append(obs(u.lock, 2))
    r.append(obs(u.is_locked, 2))
    r.append(obs(u.unlock, 2))
    r.append(obs(u.lock, 3))
    r.append(obs(u.lock, -1))
    r.append(obs(u.is_locked, 3))
    r.append(obs(u.lock, "0"))
    r.append(obs(u.lock, 1.5))
    try:
        u.lock(num=0)
    except TypeError as exc:
        r.append(str(exc))
    return r


def ep_sharedarea():
    u = uwsgi
    r = []
    r.append(obs(u.sharedarea_write8, 0, 0, 200))
    r.append(obs(u.sharedarea_read8, 0, 0))
    r.append(obs(u.sharedarea_readbyte, 0, 0))
    r.append(obs(u.sharedarea_write8, 0, 0, 256))
    r.append(obs(u.sharedarea_write16, 0, 2, 65535))
    r.append(obs(u.sharedarea_read16, 0, 2))
    r.append(obs(u.sharedarea_write32, 0, 4, 2 ** 31))
    r.append(obs(u.sharedarea_read32, 0, 4))
    r.append(obs(u.sharedarea_write32, 0, 4, 2 ** 32 + 5))
    r.append(obs(u.sharedarea_read32, 0, 4))
    r.append(obs(u.sharedarea_write64, 0, 8, -2))
    r.append(obs(u.sharedarea_read64, 0, 8))
    r.append(obs(u.sharedarea_write64, 0, 8, 2 ** 63))
    r.append(obs(u.sharedarea_inc64, 0, 8))
    r.append(obs(u.sharedarea_inc64, 0, 8, 10))
    r.append(obs(u.sharedarea_readlong, 0, 8))
    r.append(obs(u.sharedarea_dec64, 0, 8, 20))
    r.append(obs(u.sharedarea_read64, 0, 8))
    r.append(obs(u.sharedarea_write32, 0, 16, 2 ** 31 - 1))
    r.append(obs(u.sharedarea_inc32, 0, 16))
    r.append(obs(u.sharedarea_read32, 0, 16))
    r.append(obs(u.sharedarea_dec32, 0, 16, 1))
    r.append(obs(u.sharedarea_read32, 0, 16))
    r.append(obs(u.sharedarea_write, 0, 20, "héllo"))
    r.append(obs(u.sharedarea_read, 0, 20, 6))
    r.append(obs(u.sharedarea_read, 0, 4090))
    r.append(obs(u.sharedarea_read, 0, 4096))
    r.append(obs(u.sharedarea_read, 0, 4090, 7))
    r.append(obs(u.sharedarea_read8, 0, 4096))
    r.append(obs(u.sharedarea_read64, 0, 4089))
    r.append(obs(u.sharedarea_inc64, 0, 4092))   # pos+4 bug: accepted
    r.append(obs(u.sharedarea_inc64, 0, 4093))
    r.append(obs(u.sharedarea_inc32, 0, 4093))
    r.append(obs(u.sharedarea_write, 0, 4095, b"ab"))
    r.append(obs(u.sharedarea_read8, 1, 0))
    r.append(obs(u.sharedarea_write, 1, 0, b"x"))
    mv = u.sharedarea_memoryview(0)
    r.append([len(mv), mv.readonly])
    mv[100] = 7
    r.append(obs(u.sharedarea_read8, 0, 100))
    r.append(obs(u.sharedarea_memoryview, 5))
    r.append(obs(u.sharedarea_object, 5))
    r.append(obs(u.sharedarea_rlock, 0))
    r.append(obs(u.sharedarea_unlock, 0))
    r.append(obs(u.sharedarea_wlock, 0))
    r.append(obs(u.sharedarea_unlock, 0))
    r.append(obs(u.sharedarea_rlock, 3))
    r.append(hasattr(u, "sharedarea_update"))
    return r


def ep_queue():
    u = uwsgi
    r = [u.queue_size]
    r.append([u.queue_slot(), u.queue_pull_slot()])
    r.append(obs(u.queue_pop))
    r.append(u.queue_slot())
    r.append(obs(u.queue_pop))
    r.append(u.queue_slot())
    for m in (b"a", b"b", b"c"):
        r.append(obs(u.queue_push, m))
    r.append([u.queue_slot(), u.queue_pull_slot()])
    r.append(obs(u.queue_push, "X"))
    r.append(obs(u.queue_pop))
    r.append(u.queue_slot())
    r.append(obs(u.queue_last, 3))
    r.append(obs(u.queue_last, 10))
    r.append(obs(u.queue_last))
    r.append(obs(u.queue_pull))
    r.append(u.queue_pull_slot())
    r.append(obs(u.queue_pull))
    r.append(obs(u.queue_get, 2))
    r.append(obs(u.queue_get, 3))
    r.append(obs(u.queue_get, 4))
    r.append(obs(u.queue_get, -1))
    r.append(obs(u.queue_set, 1, b"S"))
    r.append(obs(u.queue_set, 4, b"S"))
    r.append(obs(u.queue_set, 1, b""))
    r.append(obs(u.queue_get, 1))
    r.append(obs(u.queue_push, b""))
    r.append(obs(u.queue_push, b"y" * 4080))
    r.append(obs(u.queue_push, b"y" * 4081))
    r.append([u.queue_slot(), u.queue_pull_slot()])
    r.append([None if x is None else len(x) for x in u.queue_last(4)])
    return r


def ep_rpc():
    u = uwsgi
    r = []
    r.append(obs(u.call, b"hello", b"a", b"b"))
    r.append(obs(u.call, b"hello"))
    r.append(obs(u.call, b"empty"))
    r.append(obs(u.call, b"strret"))
    r.append(obs(u.call, b"raiser"))
    r.append(obs(u.call, b"unknown"))
    r.append(obs(u.call, "hello"))
    r.append(obs(u.call, b"hello", "a"))
    r.append(obs(u.call))
    r.append(obs(u.rpc, None, b"hello", b"x"))
    r.append(obs(u.rpc, "", b"hello", b"y"))
    r.append(obs(u.rpc, b"", b"hello"))
    r.append(obs(u.rpc, None))
    r.append(obs(u.rpc, None, "hello"))
    r.append(obs(u.rpc_list))
    r.append(obs(u.register_rpc, "x" * 256, rpc_hello))
    r.append(obs(u.register_rpc, "w%d" % u.worker_id(), rpc_hello))
    r.append(obs(u.call, b"w%d" % u.worker_id(), b"z"))
    r.append(obs(u.register_rpc, b"bytes", rpc_hello))
    return r


ENDPOINTS = {
    "/cache": ep_cache, "/cache_errors": ep_cache_errors, "/cache_expire": ep_cache_expire,
    "/locks": ep_locks, "/sharedarea": ep_sharedarea, "/queue": ep_queue, "/rpc": ep_rpc,
}


def application(environ, start_response):
    fn = ENDPOINTS[environ["PATH_INFO"]]
    body = json.dumps(fn()).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
