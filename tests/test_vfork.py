"""The virtual fork (sim mode): each process's own app modules, what is shared and said."""

from __future__ import annotations

import json
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi._errors import VirtualForkWarning
from simuwsgi.server._vfork import Copier

TWO_WORKERS = ["--master", "--processes", "2", "--wsgi-file", "app.py"]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def by_worker(sim: Simulation, count: int, path: str = "/") -> dict[int, list]:
    """``count`` responses' JSON bodies, grouped by the worker that answered."""
    seen: dict[int, list] = {}
    for _ in range(count):
        resp = sim.get(path)
        assert resp.status == 200, resp
        seen.setdefault(resp.worker, []).append(json.loads(resp.body))
    assert len(seen) == 2, "both workers answered"
    return seen


def test_classes_closures_locks_and_runtime_imports_are_per_process(tmp_path):
    write(tmp_path, "helper.py", '''
        import threading
        count = 0
        LOCK = threading.Lock()
        class Registry:
            items = []
            def add(self, item):
                global count
                count += 1
                Registry.items.append(item)
                return count
        def make_counter():
            n = [0]
            def bump():
                n[0] += 1
                return n[0]
            return bump
        bump = make_counter()
    ''')
    write(tmp_path, "app.py", '''
        import json, sys
        import helper
        from helper import Registry, bump
        reg = Registry()
        MASTER_GLOBALS = id(globals())
        def application(environ, start_response):
            import helper as again  # a runtime import finds this process's module
            me = sys.modules[__name__]
            body = [reg.add(1), bump(), len(Registry.items), again.count,
                    me.reg is reg, helper.LOCK.acquire(blocking=False),
                    id(globals()) != MASTER_GLOBALS]
            start_response("200 OK", [])
            return [json.dumps(body).encode()]
    ''')
    with Simulation(TWO_WORKERS, app_dir=tmp_path, seed=2) as sim:
        for bodies in by_worker(sim, 8).values():
            n = len(bodies)
            assert [b[:4] for b in bodies] == [[i, i, i, i] for i in range(1, n + 1)]
            assert all(b[4] and b[6] for b in bodies)
            # each process got its own (unheld) lock: the first acquire works in each
            assert [b[5] for b in bodies] == [True] + [False] * (n - 1)
        assert sim.globals("master")["helper"]["count"] == 0
        import helper  # the test sees the master's module
        assert helper.count == 0 and helper.Registry.items == []


def test_master_registrations_call_the_running_process_copy(tmp_path):
    write(tmp_path, "app.py", '''
        import uwsgi
        state = {"n": 0}
        def bump(where):
            state["n"] += 1
            uwsgi.log("%s %d" % (where, state["n"]))
        # lambdas no global refers to: copied when a process first calls them
        uwsgi.register_signal(30, "workers", lambda num: bump("sig w%d" % uwsgi.worker_id()))
        uwsgi.register_rpc("bump", lambda: bump("rpc w%d" % uwsgi.worker_id()) or b"")
        uwsgi.mule_msg_hook = lambda msg: bump("mule%d" % uwsgi.mule_id())
        def spool(args):
            bump("spooler")
            return uwsgi.SPOOL_OK
        uwsgi.spooler = spool
        def application(environ, start_response):
            bump("req w%d" % uwsgi.worker_id())
            uwsgi.log("hook is mine: %s" % (uwsgi.spooler is spool))
            uwsgi.call(b"bump")
            uwsgi.mule_msg(b"hi", 1)
            uwsgi.spool({b"a": b"1"})
            start_response("200 OK", [])
            return [b""]
    ''')
    (tmp_path / "spool").mkdir()
    options = TWO_WORKERS + ["--mules", "1", "--spooler", str(tmp_path / "spool")]
    with Simulation(options, app_dir=tmp_path, seed=1) as sim:
        worker = sim.get("/").worker
        sim.signal(30)
        sim.advance(3)
        log = sim.log
        other = 3 - worker
        assert {f"req w{worker} 1", f"rpc w{worker} 2", f"sig w{worker} 3",
                f"sig w{other} 1", "mule1 1", "spooler 1", "hook is mine: True"} <= set(log)
        assert sim.globals("master")["uwsgi_file_app"]["state"] == {"n": 0}


UNCOPYABLE_STATE = '''
    import socket
    class App:
        def __init__(self):
            self.sock = socket.socket()  # cannot be copied
            self.url_map = {"/": "index"}
    class Picky:
        def __init__(self):
            self.url_map = {"/": "index"}
        def __setstate__(self, state):
            raise TypeError("Picky objects cannot be copied")
    app = App()
    picky = Picky()
'''


def test_an_uncopyable_object_is_shared_whole_and_reported_once(tmp_path):
    # a_state is copied before b_views: a failed copy must not leave a half-built
    # object that b_views's copy then picks up
    write(tmp_path, "a_state.py", UNCOPYABLE_STATE)
    write(tmp_path, "b_views.py", "from a_state import app, picky\n")
    write(tmp_path, "app.py", '''
        import json
        import a_state, b_views
        def application(environ, start_response):
            a_state.app.url_map["/w"] = "worker"
            body = [b_views.app.url_map == a_state.app.url_map, b_views.app is a_state.app,
                    b_views.picky.url_map, b_views.picky is a_state.picky]
            start_response("200 OK", [])
            return [json.dumps(body).encode()]
    ''')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = Simulation(TWO_WORKERS, app_dir=tmp_path).start()
    with sim:
        for bodies in by_worker(sim, 6).values():
            assert bodies[0] == [True, True, {"/": "index"}, True]
        master = sim.globals("master")["a_state"]
        assert master["app"].url_map == {"/": "index"}, "the App itself was copied"
        sim.kill("worker1")
        sim.advance(2)
        master["app"].sock.close()
        (record,) = sim.trace.select("vfork.shared")
        assert record.process == "master"
        assert [o.split(" ")[0] for o in record.fields["objects"]] == ["a_state.app",
                                                                       "a_state.picky"]
    (warning,) = [w for w in caught if w.category is VirtualForkWarning]
    text = str(warning.message)
    # the App is copied around its socket; Picky refuses its copy: shared itself
    assert "a_state.app (holds socket.socket" in text and "a_state.picky (a_state.Picky" in text
    assert "mode='fork'" in text


def test_a_held_lock_is_shared_and_reported(tmp_path):
    write(tmp_path, "app.py", '''
        import threading
        LOCK = threading.Lock()
        LOCK.acquire()
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b""]
    ''')
    with pytest.warns(VirtualForkWarning, match=r"uwsgi_file_app\.LOCK \(_thread\.lock: "
                                                r"held by a thread at fork time\)"):
        with Simulation(TWO_WORKERS, app_dir=tmp_path) as sim:
            assert sim.get("/").status == 200


def test_a_flask_app_runs_in_each_worker_with_its_own_state(tmp_path):
    pytest.importorskip("flask")
    write(tmp_path, "flask_app.py", '''
        from flask import Flask
        app = Flask(__name__)
        hits = {"n": 0}
    ''')
    write(tmp_path, "views.py", '''
        from flask import jsonify
        from flask_app import app, hits
        @app.route("/")
        def index():
            hits["n"] += 1
            return jsonify([hits["n"], sorted(r.rule for r in app.url_map.iter_rules())])
    ''')
    write(tmp_path, "app.py", "from flask_app import app as application\nimport views\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VirtualForkWarning)
        with Simulation(TWO_WORKERS, app_dir=tmp_path, seed=5) as sim:
            for bodies in by_worker(sim, 8).values():
                rules = ["/", "/static/<path:filename>"]
                assert bodies == [[i, rules] for i in range(1, len(bodies) + 1)]
            assert sim.globals("master")["flask_app"]["hits"] == {"n": 0}


def test_a_wsgi_file_outside_the_app_directory_is_per_worker(tmp_path):
    elsewhere = write(tmp_path / "elsewhere", "counter.py", '''
        import json
        hits = 0
        def application(environ, start_response):
            global hits
            hits += 1
            start_response("200 OK", [])
            return [json.dumps([hits]).encode()]
    ''')
    (tmp_path / "base").mkdir()
    options = ["--master", "--processes", "2", "--wsgi-file", str(elsewhere)]
    with Simulation(options, app_dir=tmp_path / "base", seed=4) as sim:
        for bodies in by_worker(sim, 8).values():
            assert bodies == [[i] for i in range(1, len(bodies) + 1)]


CLASSES = '''
    import abc, enum, weakref
    class Plugin:
        registry = []
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            Plugin.registry.append(cls)
        def name(self):
            return "plugin"
    class Greeter(Plugin):
        def hello(self):  # __class__ (super's cell) is the process's class
            return "%s %s %s from %s" % (super().name(), __class__.__name__,
                                         __class__ is Greeter, WHO)
    class AppError(KeyError):
        pass
    class Point:
        __slots__ = ("x",)
        def __init__(self, x):
            self.x = x
    class Color(enum.Enum):
        RED = 1
    class Shape(abc.ABC):
        @abc.abstractmethod
        def area(self): ...
    class Square(Shape):
        def area(self):
            return WHO
    WHO = "master"
    origin = Point(0)
    greeter = Greeter()
    greeter_ref = weakref.ref(greeter)
'''


def copy_module(tmp_path: Path, name: str, source: str):
    """(master, child, copier): ``source`` run as module ``name``, and its fork copy."""
    master = types.ModuleType(name)
    master.__file__ = str(tmp_path / f"{name}.py")
    exec(textwrap.dedent(source), master.__dict__)
    sys.modules[name] = master
    try:
        copier = Copier({name: master})
    finally:
        del sys.modules[name]
    return master, copier.modules[name], copier


def test_classes_are_rebuilt_on_the_process_globals_without_rerunning_hooks(tmp_path):
    master, child, copier = copy_module(tmp_path, "vfork_classes", CLASSES)
    child.WHO = "child"
    assert child.Greeter is not master.Greeter
    assert child.Greeter().hello() == "plugin Greeter True from child"
    assert child.Plugin.registry == [child.Greeter], "no second registration of the copy"
    assert master.Plugin.registry == [master.Greeter]
    assert issubclass(child.AppError, KeyError) and child.AppError is not master.AppError
    assert type(child.origin) is child.Point and child.origin.x == 0
    assert child.greeter_ref() is child.greeter and master.greeter_ref() is master.greeter
    assert child.Square().area() == "child" and isinstance(child.Square(), child.Shape)
    with pytest.raises(TypeError, match="abstract"):
        child.Shape()
    assert child.Color is master.Color and copier.shared == [], "enums are shared silently"


def test_library_decorators_wrap_the_process_copy(tmp_path):
    master, child, copier = copy_module(tmp_path, "vfork_decorated", '''
        import contextlib, functools
        state = {"n": 0}
        @contextlib.contextmanager
        def counting():
            state["n"] += 1
            yield state["n"]
        @functools.lru_cache(maxsize=None)
        def who():
            return WHO
        WHO = "master"
        MASTER_SAYS = who()
    ''')
    child.WHO = "child"
    with child.counting() as n:
        assert n == 1
    assert (child.state, master.state) == ({"n": 1}, {"n": 0})
    assert child.who() == "child", "a new cache around the process's function"
    assert master.who() == "master" and copier.shared == []


def test_a_module_first_imported_after_the_fork_is_each_process_own(tmp_path):
    write(tmp_path, "mypkg/__init__.py", "n = 0\n")
    write(tmp_path, "mypkg/tasks.py", '''
        calls = 0
        def bump():
            global calls
            calls += 1
            return calls
    ''')
    write(tmp_path, "app.py", '''
        import json
        import mypkg
        def application(environ, start_response):
            import mypkg.tasks  # first imported by whichever worker runs first
            mypkg.n += 1
            start_response("200 OK", [])
            return [json.dumps([mypkg.n, mypkg.tasks.bump()]).encode()]
    ''')
    with Simulation(TWO_WORKERS, app_dir=tmp_path, seed=3) as sim:
        before = by_worker(sim, 6)
        for bodies in before.values():
            assert bodies == [[i, i] for i in range(1, len(bodies) + 1)]
        sim.kill("worker1")
        sim.advance(2)
        after = by_worker(sim, 6)
        # the respawned worker 1 starts from the master's state and imports tasks afresh
        assert after[1] == [[i, i] for i in range(1, len(after[1]) + 1)]
        done = len(before[2])
        assert after[2] == [[i, i] for i in range(done + 1, done + len(after[2]) + 1)]


def test_what_a_shared_object_holds_is_the_same_object_for_every_global(tmp_path):
    """``holder`` cannot be copied (Picky refuses), so it is shared whole, with the
    master's ``config`` inside; the global ``config`` must then be that same object,
    not a copy of its own (copied first, it was: two globals disagreed)."""
    master, child, copier = copy_module(tmp_path, "vfork_consistent", '''
        config = {"debug": False}
        class Picky:
            def __init__(self, config):
                self.config = config
            def __reduce_ex__(self, protocol):
                raise TypeError("Picky objects cannot be copied")
        holder = Picky(config)
        unrelated = {"n": 0}
    ''')
    assert child.holder is master.holder
    assert child.config is child.holder.config is master.config
    assert child.unrelated is not master.unrelated, "what it does not reach is copied"
    assert [where for where, _ in copier.shared] == ["vfork_consistent.holder"]


REGLIB = '''
import mmap, os

VALUES = []  # every value of this process: reopened after a fork (prometheus_client's way)
_pid = [os.getpid()]

class Value:
    def __init__(self):
        self._m = mmap.mmap(-1, 8)
        VALUES.append(self)

    def inc(self):
        if os.getpid() != _pid[0]:  # forked: each value gets a mapping of its own
            _pid[0] = os.getpid()
            for value in VALUES:
                value._m.close()
                value._m = mmap.mmap(-1, 8)
        self._m[0] += 1
        return self._m[0]

class Metric:
    def __init__(self):
        self._value = Value()
'''


def test_a_library_object_holding_an_uncopyable_one_is_shared_whole(tmp_path):
    """A library's object that holds one the fork cannot copy (an mmap) is the
    library's state too: copied around the mmap, the app's copy held the master's mapping,
    which the library closed at its first use after the fork (prometheus_client's
    multiprocess values: "mmap closed or invalid" on every request). Shared whole, the
    app's global and the library's list agree."""
    write(tmp_path / "lib", "reglib.py", REGLIB)
    write(tmp_path / "app", "app.py", '''
        import json, reglib
        M = reglib.Metric()
        def application(environ, start_response):
            start_response("200 OK", [])
            return [json.dumps([M._value.inc(), reglib.VALUES[0] is M._value]).encode()]
    ''')
    argv = [*TWO_WORKERS, "--pythonpath", str(tmp_path / "lib")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Simulation(argv, app_dir=tmp_path / "app", seed=2) as sim:
            for bodies in by_worker(sim, 6).values():
                assert all(same for _n, same in bodies)
            (record,) = sim.trace.select("vfork.shared")
    assert record.fields["objects"] == [
        "uwsgi_file_app.M (reglib.Metric holding reglib.Value holding mmap.mmap: cannot "
        "pickle 'mmap.mmap' object)"]
    (warning,) = [w for w in caught if w.category is VirtualForkWarning]
    assert "uwsgi_file_app.M (reglib.Metric holding" in str(warning.message)


def test_each_simulation_says_what_it_shares(tmp_path):
    """Python's registry shows a warning once per place in the code; each simulation of
    the app warns (the second one said nothing)."""
    write(tmp_path, "app.py", '''
        import socket
        SOCK = socket.socket()
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b""]
    ''')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(2):
            with Simulation(TWO_WORKERS, app_dir=tmp_path) as sim:
                sim.get("/")
                sim.globals("master")["uwsgi_file_app"]["SOCK"].close()
    assert [w.category for w in caught].count(VirtualForkWarning) == 2


def test_a_running_thread_in_a_global_does_not_share_the_app_state(tmp_path):
    """The master's thread is shared whole (it holds a lock held at fork time, said in
    the warning), but not what its virtual locks lead to: the simulation itself, hence
    every global of the app. Each worker has its own counter, which the master's thread
    does not touch, as on the real server (and the thread reads alive there, as uWSGI's
    C fork() leaves Python's threading state)."""
    write(tmp_path, "app.py", '''
        import threading, time
        counter = {"n": 0}
        def loop():
            while True:
                time.sleep(1)
                counter["n"] += 1
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        def application(environ, start_response):
            start_response("200 OK", [])
            return [("%d %s" % (counter["n"], t.is_alive())).encode()]
    ''')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Simulation(TWO_WORKERS, app_dir=tmp_path, seed=1) as sim:
            sim.advance(3.5)
            assert {sim.get("/").text for _ in range(4)} == {"0 True"}
            assert sim.globals("master")["uwsgi_file_app"]["counter"] == {"n": 3}
    (warning,) = [w for w in caught if w.category is VirtualForkWarning]
    assert "uwsgi_file_app.t (threading.Thread holding _thread.lock: held by a thread" \
        in str(warning.message)


def test_the_class_of_a_shared_object_is_shared_with_it(tmp_path):
    """A running thread in a global is shared whole; the app object its arguments hold
    is shared with it, and so is that object's class, or ``isinstance`` in a worker,
    against the worker's copy of the class, is False (OpenTelemetry's
    ``parent_span_context must be a SpanContext`` on every request, when the library
    lives in the app's tree)."""
    write(tmp_path, "spans.py", '''
        import threading, time
        class Context:
            pass
        INVALID = Context()
        def _keep(context):
            while True:
                time.sleep(60)
        KEEPER = threading.Thread(target=_keep, args=(INVALID,), daemon=True)
        KEEPER.start()
        def valid(context):
            return isinstance(context, Context)
    ''')
    write(tmp_path, "app.py", '''
        import spans
        def application(environ, start_response):
            start_response("200 OK", [])
            return [str(spans.valid(spans.INVALID)).encode()]
    ''')
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with Simulation(TWO_WORKERS, app_dir=tmp_path, seed=1) as sim:
            assert {sim.get("/").text for _ in range(4)} == {"True"}
            assert "spans.KEEPER" in sim.trace.select("vfork.shared")[0].fields["objects"][0]
