"""Small reproductions of how open-source libraries use uWSGI's API (not their code).

Each was found by running the library under a simulation as its users would:

* a job queue on the spooler (as ``uwsgi-tasks`` does): the task's arguments, datetimes
  included, are pickled into ``uwsgi.spool``; the library installs ``uwsgi.spooler`` when
  it is imported by the app (in the master); a failing task re-spools itself with ``at``
  in the future for a bounded number of retries;
* a Django-style cache backend (as ``django-uwsgi-cache`` does): a library module, loaded
  lazily from outside the app's directory, binds ``uwsgi`` at its import and keeps it;
  two simulations in a row must each see their own cache;
* a Flask extension's view decorator (as ``flask-caching`` does): the library's wrapper
  closes over the extension object, which the app also keeps in a global and the app
  object keeps as a key of its ``extensions``; every worker must find one object in all
  three places (each worker had a copy in two of them and the master's in the third:
  ``KeyError`` on every request); and Flask's ``request`` proxy in the app's globals is
  no reason for a warning;
* an APM agent's start-up checks (as ``ddtrace`` does, ``--import``-ed or imported by
  the app): ``uwsgi.opt`` flags read as ``True``, ``numproc``/``worker_id()`` to know the
  master, its worker callback registered with ``uwsgidecorators.postfork`` from the
  library's own module (with only simuwsgi installed, ``uwsgidecorators`` was missing),
  and ``uwsgi.atexit`` chained; an error tracker's (as ``sentry-sdk`` does): it warns
  unless ``--py-call-uwsgi-fork-hooks`` is set, and its forked workers must then see the
  ``os.register_at_fork`` hook it relies on run.
"""

from __future__ import annotations

import textwrap

import pytest

from simuwsgi import Simulation

JOBLIB = '''
import datetime, pickle, uwsgi

TASKS = {}  # filled when the app is imported, in the master: every process inherits it

def _run(message):
    job = pickle.loads(message[b"job"])
    try:
        TASKS[job["fn"]](*job["args"])
    except RuntimeError:
        if job["retries"] > 0:
            job["retries"] -= 1
            when = datetime.datetime.now() + datetime.timedelta(seconds=job["delay"])
            uwsgi.spool({b"job": pickle.dumps(job), b"at": str(int(when.timestamp())).encode()})
    return uwsgi.SPOOL_OK

uwsgi.spooler = _run

def task(retries=0, delay=0):
    def wrap(fn):
        TASKS[fn.__name__] = fn

        def enqueue(*args):
            job = {"fn": fn.__name__, "args": args, "retries": retries, "delay": delay}
            return uwsgi.spool({b"job": pickle.dumps(job)})
        return enqueue
    return wrap
'''

JOB_APP = '''
import datetime, os
import joblib

HERE = os.path.dirname(os.path.abspath(__file__))  # the spooler runs tasks in its directory

@joblib.task()
def stamp(when):
    with open(os.path.join(HERE, "stamps.log"), "a") as f:
        f.write(f"{type(when).__name__} {when.isoformat()}\\n")

@joblib.task(retries=2, delay=30)
def flaky():
    with open(os.path.join(HERE, "flaky.log"), "a") as f:
        f.write(f"{datetime.datetime.now().isoformat()}\\n")
    raise RuntimeError("try again")

def application(environ, start_response):
    stamp(datetime.datetime.now())
    if environ["PATH_INFO"] == "/flaky":
        flaky()
    start_response("200 OK", [])
    return [b"queued"]
'''


def test_a_spooler_job_queue_pickles_datetimes_and_retries_at_a_time(tmp_path):
    (tmp_path / "joblib.py").write_text(JOBLIB)
    (tmp_path / "app.py").write_text(JOB_APP)
    (tmp_path / "spool").mkdir()
    options = ["--master", "--processes", "2", "--spooler", "spool", "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=tmp_path, start="2026-05-01T12:00:00", tz="UTC") as sim:
        assert sim.get("/").status == 200
        assert sim.get("/flaky").status == 200
        sim.advance(300)
    stamps = (tmp_path / "stamps.log").read_text().split()
    assert stamps == ["datetime", "2026-05-01T12:00:00", "datetime", "2026-05-01T12:00:00"]
    tries = (tmp_path / "flaky.log").read_text().split()
    assert len(tries) == 3, tries  # the first run and two retries, each at least 30 s later
    assert tries[0] == "2026-05-01T12:00:00"
    assert tries[1] >= "2026-05-01T12:00:30" and tries[2] >= "2026-05-01T12:01:00"


CACHE_BACKEND = '''
import pickle
try:
    import uwsgi
except ImportError:
    uwsgi = None

class Cache:
    def get(self, key, default=None):
        raw = uwsgi.cache_get(key, "app")
        return default if raw is None else pickle.loads(raw)

    def set(self, key, value, timeout=0):
        uwsgi.cache_update(key, pickle.dumps(value), timeout, "app")
'''

CACHE_APP = '''
def application(environ, start_response):
    import cachebackend  # loaded lazily, as a framework loads its cache backend
    cache = cachebackend.Cache()
    hits = cache.get("hits", 0) + 1
    cache.set("hits", hits, 60)
    start_response("200 OK", [])
    return [b"hits=%d" % hits]
'''


@pytest.fixture
def site_packages(tmp_path, monkeypatch):
    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "cachebackend.py").write_text(textwrap.dedent(CACHE_BACKEND))
    monkeypatch.syspath_prepend(str(lib))
    return lib


def test_a_lazily_loaded_cache_backend_sees_each_simulations_own_cache(tmp_path,
                                                                      site_packages):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(CACHE_APP)
    options = ["--master", "--processes", "2", "--cache2", "name=app,items=10",
               "--wsgi-file", "app.py"]
    bodies = []
    for _ in range(2):
        with Simulation(options, app_dir=app) as sim:
            bodies.append([sim.get("/").body for _ in range(2)])
            sim.advance(61)
            bodies[-1].append(sim.get("/").body)  # expired after its 60 s
    assert bodies == [[b"hits=1", b"hits=2", b"hits=1"]] * 2


EXTENSION = '''
import functools

#: the app serving the request (Flask's ``current_app``: the app's own object)
current = []

class Extension:
    """A Flask-style extension: registers itself on the app, wraps views."""
    def __init__(self, app):
        app.extensions[self] = {"calls": 0}

    def counted(self, view):
        @functools.wraps(view)
        def wrapper(*args):
            state = current[0].extensions[self]  # KeyError if self is not the key
            state["calls"] += 1
            return view(*args) + b" (call %d here)" % state["calls"]
        return wrapper
'''

EXTENSION_APP = '''
import extension
from werkzeug.local import LocalProxy

class App:
    def __init__(self):
        self.extensions = {}

app = App()
ext = extension.Extension(app)
current = LocalProxy(lambda: app)  # as flask.request: a proxy of context-local state

@ext.counted
def view():
    return b"view"

def application(environ, start_response):
    extension.current[:] = [app]  # as Flask pushes its app context
    start_response("200 OK", [])
    return [view()]
'''


def test_a_library_wrapper_and_the_app_share_one_extension_object_per_worker(
        tmp_path, site_packages, recwarn):
    (site_packages / "extension.py").write_text(EXTENSION)
    (tmp_path / "app.py").write_text(EXTENSION_APP)
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        bodies = sorted(sim.get("/").body for _ in range(4))
        log = list(sim.log)
    assert not [line for line in log if "Traceback" in line], log
    # each worker counts its own calls: the extension object is copied, once, per worker
    assert bodies[:2] == [b"view (call 1 here)", b"view (call 1 here)"] or \
        bodies == sorted([b"view (call %d here)" % n for n in (1, 2, 3, 4)])
    assert not [w for w in recwarn if "virtual fork shares" in str(w.message)]


AGENT = """
import os
import uwsgi

class MasterProcess(Exception):
    pass

state = {"started": [], "forked": [], "exits": []}

def check():
    opt = uwsgi.opt
    if not (opt.get("enable-threads") or int(opt.get("threads") or 0)):
        raise RuntimeError("enable-threads option must be set to true")
    hooks = bool(opt.get("py-call-uwsgi-fork-hooks"))
    if hooks:  # CPython's own fork hooks will run in the workers
        os.register_at_fork(after_in_child=lambda: state["forked"].append(os.getpid()))
    elif uwsgi.numproc > 1 and not opt.get("lazy-apps") and uwsgi.worker_id() == 0:
        import uwsgidecorators
        uwsgidecorators.postfork(lambda: state["started"].append(uwsgi.worker_id()))
        previous = getattr(uwsgi, "atexit", None)
        def chained():
            state["exits"].append(uwsgi.worker_id())
            if previous is not None:
                previous()
        uwsgi.atexit = chained
        raise MasterProcess()
"""

AGENT_APP = """
import agent
try:
    agent.check()
except agent.MasterProcess:
    pass

def application(environ, start_response):
    # (the agent is a library: its module's state is one for all the virtual processes,
    # README "The virtual fork"; each worker looks for its own entries)
    import os, uwsgi
    mine = (uwsgi.worker_id() in agent.state["started"], os.getpid() in agent.state["forked"])
    start_response("200 OK", [])
    return [repr(mine).encode()]
"""


@pytest.mark.parametrize("decorators", ["auto", "simuwsgi"])
@pytest.mark.parametrize("hooks", [False, True])
def test_an_apm_agent_finds_its_worker_hooks(tmp_path, site_packages, decorators, hooks):
    """``decorators="simuwsgi"`` stands for a machine where only simuwsgi is installed
    (test_decorators.py hides uWSGI's file for the default as well)."""
    (site_packages / "agent.py").write_text(AGENT)
    (tmp_path / "app.py").write_text(AGENT_APP)
    options = ["--master", "--processes", "2", "--enable-threads", "--wsgi-file", "app.py"]
    with Simulation([*options, *(["--py-call-uwsgi-fork-hooks"] if hooks else [])],
                    app_dir=tmp_path, decorators=decorators) as sim:
        bodies = sorted({sim.get("/").body for _ in range(6)})
        log = list(sim.log)
    assert not [line for line in log if "Traceback" in line or "not simulated" in line], log
    assert bodies == ([b"(False, True)"] if hooks else [b"(True, False)"])
    assert "*** Operational MODE: preforking ***" in log
