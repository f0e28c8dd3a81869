"""simuwsgi's own ``uwsgidecorators`` (``decorators="simuwsgi"``, and the default where uWSGI's is not installed)."""

from __future__ import annotations

import pickle
import sys
import textwrap
import types

import pytest

from simuwsgi import Simulation
from simuwsgi import uwsgidecorators as ud_source


def _run(tmp_path, source, opts=("--master", "--processes", "2"), advance=0.0, **kw):
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    sim = Simulation([*opts, "--wsgi-file", "app.py"], app_dir=tmp_path,
                     decorators="simuwsgi", **kw).start()
    sim.advance(advance)
    return sim


def test_import_effects_and_signal_numbering(tmp_path):
    sim = _run(tmp_path, """
        import uwsgi
        from uwsgidecorators import timer, rbtimer, cron, filemon, signal, get_free_signal
        import uwsgidecorators as ud
        @timer(2)
        def t(n): uwsgi.log("timer %d" % n)
        @rbtimer(3)
        def r(n): uwsgi.log("rb %d" % n)
        @cron(-1, -1, -1, -1, -1)
        def c(n): uwsgi.log("cron %d" % n)
        @filemon("app.py")
        def f(n): uwsgi.log("filemon %d" % n)
        @signal(40, target="workers")
        def s(n): uwsgi.log("sig %d w%d" % (n, uwsgi.worker_id()))
        HOOKS = (uwsgi.post_fork_hook is ud.postfork_chain_hook,
                 uwsgi.mule_msg_hook is ud.mule_msg_dispatcher,
                 uwsgi.spooler is ud.manage_spool_request)
        NAMES = (t.__name__, r.__name__, c.__name__, f.__name__, s.__name__)
        def application(e, sr):
            sr("200 OK", [])
            return [b""]
    """, advance=4.5)
    with sim:
        g = sim.globals("master")["uwsgi_file_app"]
        assert g["HOOKS"] == (True, True, True)
        assert g["NAMES"] == ("t", "r", "c", "f", "s")
        assert [r["num"] for r in sim.trace.select("signal.register")] == [0, 1, 2, 3, 40]
        sim.inst.subsystems["filemon"].touch("app.py")
        sim.signal(40)
        sim.advance(0.1)
        log = sim.log
        assert log.count("timer 0") == 2 and log.count("rb 1") == 1 and "cron 2" in log
        assert "filemon 3" in log and {"sig 40 w1", "sig 40 w2"} <= set(log)


def test_needs_a_master(tmp_path):
    (tmp_path / "app.py").write_text("import uwsgidecorators\n")
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path, decorators="simuwsgi",
                    allow_no_app=True) as sim:
        assert any("you have to enable the uWSGI master process" in line for line in sim.log)


def test_postfork_mule_mulefunc_and_farm(tmp_path):
    sim = _run(tmp_path, """
        import uwsgi
        from uwsgidecorators import postfork, mule, muleloop, mulefunc, mulemsg, farm
        @postfork
        def every(): uwsgi.log("pf w%d m%d" % (uwsgi.worker_id(), uwsgi.mule_id()))
        @postfork(2)
        def only2(): uwsgi.log("pf2 w%d" % uwsgi.worker_id())
        @mule(1)
        def brain(): uwsgi.log("brain m%d" % uwsgi.mule_id())
        @mulefunc
        def job(x, y=0): uwsgi.log("job %r %r in m%d" % (x, y, uwsgi.mule_id()))
        @mulefunc(1)
        def job1(x): uwsgi.log("job1 %r in m%d" % (x, uwsgi.mule_id()))
        @mulemsg(2)
        def inbox(m): uwsgi.log("inbox %r" % m)
        @farm("f")
        def farmer(m): uwsgi.log("farmer %r m%d" % (m, uwsgi.mule_id()))
        DECORATED = (only2, brain, inbox, farmer)
        def application(e, sr):
            sr("200 OK", [])
            job(1, y=2)
            job1(3)
            uwsgi.mule_msg(b"raw", 2)
            uwsgi.farm_msg("f", b"hay")
            return [b""]
    """, opts=("--master", "--processes", "2", "--mules", "3", "--farm", "f:3"))
    with sim:
        assert sim.globals("master")["uwsgi_file_app"]["DECORATED"] == (None,) * 4
        sim.get("/")
        sim.advance(0.1)
        log = sim.log
        assert {"pf w1 m0", "pf w2 m0", "pf w0 m1", "pf w0 m2", "pf w0 m3", "pf2 w2"} <= set(log)
        assert "pf2 w1" not in log and "brain m1" in log
        assert "job1 3 in m1" in log and "inbox b'raw'" in log and "farmer b'hay' m3" in log
        # the shared queue goes to a waiting mule: mule 1 (default loop: dispatched) or
        # mule 2 (its @mulemsg loop consumes the pickle without dispatching), never 3
        choice = [r["picked"] for r in sim.trace.select("choice", what="mule message")]
        assert choice in (["mule1"], ["mule2"])
        if choice == ["mule1"]:
            assert "job 1 2 in m1" in log
        else:
            assert sum(line.startswith("inbox b'\\x80") for line in log) == 1


def test_farm_without_a_name_breaks_the_chain_in_mules(tmp_path):
    sim = _run(tmp_path, """
        import uwsgi
        from uwsgidecorators import farm, postfork
        @farm()
        def f(m): pass
        @postfork
        def after(): uwsgi.log("after w%d m%d" % (uwsgi.worker_id(), uwsgi.mule_id()))
        def application(e, sr):
            return []
    """, opts=("--master", "--processes", "1", "--mules", "1"))
    with sim:
        assert "after w1 m0" in sim.log and "after w0 m1" not in sim.log
        assert any("in_farm() argument 1 must be str, not None" in line for line in sim.log)


class _FakeUwsgi(types.ModuleType):
    SPOOL_OK, SPOOL_RETRY = -2, -1

    def __init__(self, spooler: bool = True) -> None:
        super().__init__("uwsgi")
        self.opt = {"spooler": b"/tmp/spool"} if spooler else {}
        self.spooled: list[dict] = []
        self.registered: set[int] = set()

    def masterpid(self) -> int:
        return 1

    def spool(self, d: dict) -> bytes:
        for k, v in d.items():
            if not isinstance(k, bytes) or not isinstance(v, bytes):
                raise ValueError("spooler callable dictionary must contains only bytes")
        self.spooled.append(d)
        return b"/tmp/spool/uwsgi_spoolfile_on_x"

    def signal_registered(self, n: int):
        return True if n in self.registered else None


@pytest.fixture
def fake(monkeypatch):
    mod = _FakeUwsgi()
    monkeypatch.setitem(sys.modules, "uwsgi", mod)
    return mod


def test_spool_decorators_encode_and_dispatch(fake):
    ud = ud_source.fresh()

    @ud.spool
    def plain(args):
        return "ignored"

    @ud.spoolforever
    def forever(args):
        return None

    @ud.spoolraw
    def raw(args):
        return args["ret"]

    @ud.spool(pass_arguments=True)
    def withargs(a, b=None):
        withargs.seen = (a, b)

    assert type(plain).__name__ == "_spool" and fake.spool is not None
    plain({"k": "v"}, z="w")
    assert fake.spooled[-1] == {b"ud_spool_func": b"plain", b"ud_spool_ret": b"-2",
                                b"k": b"v", b"z": b"w"}
    forever()
    assert fake.spooled[-1][b"ud_spool_ret"] == b"-1"
    withargs(1, b=[2], priority="3", at=b"123")
    task = fake.spooled[-1]
    assert task[b"priority"] == b"3" and task[b"at"] == b"123"
    assert pickle.loads(task[b"args"]) == (1,) and pickle.loads(task[b"kwargs"]) == {"b": [2]}
    with pytest.raises(ValueError, match="only bytes"):
        plain({"n": 1})
    # execution in the spooler
    run = ud.manage_spool_request
    assert run({b"ud_spool_func": b"plain", b"ud_spool_ret": b"-2", b"spooler_task_name": b"t"}) == -2
    assert run({b"ud_spool_func": b"forever", b"ud_spool_ret": b"-1"}) == -1
    assert run({b"ud_spool_func": b"raw", b"ret": b"-2"}) == -2
    assert run(dict(task)) == -2 and withargs.seen == (1, [2])
    with pytest.raises(KeyError):
        run({b"no": b"func"})
    with pytest.raises(UnicodeDecodeError):
        run({b"ud_spool_func": b"plain", b"body": b"\xff\xfe"})
    ud.spooler_functions["rawnone"] = lambda d: None
    with pytest.raises(TypeError):
        run({b"ud_spool_func": b"rawnone"})


def test_spool_needs_a_spooler_and_misc(monkeypatch):
    fake = _FakeUwsgi(spooler=False)
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    ud = ud_source.fresh()
    with pytest.raises(Exception, match="you have to enable the uWSGI spooler to use @_spoolforever decorator"):
        ud.spoolforever(lambda d: None)
    fake.registered = set(range(256))
    with pytest.raises(Exception, match="No free uwsgi signal available"):
        ud.timer(1)
    fake.registered = {0, 1}
    assert ud.get_free_signal() == 2
    calls = []
    fake.lock = lambda *a: calls.append("lock")
    fake.unlock = lambda *a: calls.append("unlock")
    fake.i_am_the_spooler = lambda: None
    fake.set_user_harakiri = lambda s: calls.append(("harakiri", s))
    assert ud.lock(lambda x: x * 2)(21) == 42
    assert ud.harakiri(5)(lambda: "r")() == "r"
    assert calls == ["lock", "unlock", ("harakiri", 5), ("harakiri", 0)]
    fake.i_am_the_spooler = lambda: True
    assert ud.lock(lambda: 1)() is None
    with pytest.raises(AttributeError):
        ud.erlang("x")(lambda: None)


DECORATED = """
    import uwsgi
    import uwsgidecorators
    from uwsgidecorators import timer
    @timer(1)
    def tick(num):
        uwsgi.log("tick")
    def application(environ, start_response):
        start_response("200 OK", [])
        return [uwsgidecorators.__file__.encode()]
"""


@pytest.fixture
def no_installed_decorators(monkeypatch):
    """As after ``pip install simuwsgi`` alone: no ``uwsgidecorators`` on the path
    (pyuwsgi, which ships uWSGI's, is not installed)."""
    import importlib.machinery

    real = importlib.machinery.PathFinder.find_spec

    def find_spec(name, path=None, target=None):
        return None if name == "uwsgidecorators" else real(name, path, target)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", find_spec)


def test_without_uwsgis_own_file_the_default_imports_simuwsgis(tmp_path,
                                                              no_installed_decorators):
    (tmp_path / "app.py").write_text(textwrap.dedent(DECORATED))
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(2.5)
        assert sim.get("/").body == ud_source.__file__.encode()
        assert sim.log.count("tick") == 2
    assert ud_source.Finder not in {type(f) for f in sys.meta_path}  # taken out at close


def test_a_cluster_node_imports_it_too(tmp_path, no_installed_decorators):
    from simuwsgi import Cluster

    (tmp_path / "app.py").write_text(textwrap.dedent(DECORATED))
    cluster = Cluster()
    node = cluster.add("a", ["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
    with cluster:
        cluster.advance(1.5)
        assert node.get("/").body == ud_source.__file__.encode()
        assert node.log.count("tick") == 1
    assert ud_source.Finder not in {type(f) for f in sys.meta_path}


def test_the_default_prefers_uwsgis_own_file_where_installed(tmp_path):
    import importlib.util

    real = importlib.util.find_spec("uwsgidecorators")  # pyuwsgi (a test dependency)
    assert real is not None and real.origin != ud_source.__file__
    (tmp_path / "app.py").write_text(textwrap.dedent(DECORATED))
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(1.5)
        assert sim.get("/").body == real.origin.encode()
        assert sim.log.count("tick") == 1


def test_an_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="decorators must be one of 'auto', 'simuwsgi'"):
        Simulation(["--master"], decorators="uwsgi")
