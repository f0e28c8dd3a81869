"""``--pidfile``/``--pidfile2``: uWSGI writes its pid (the master's) in the file as it
starts, with ``writing pidfile to NAME`` (``--pidfile`` before the privileges drop,
``--pidfile2`` after: later in the log), not again at a reload; ``--vacuum`` removes
them as the master exits (``VACUUM: pidfile removed.``); a file that cannot be written
ends the start (exit 1). In a simulation the pid is the master's virtual one. The
``real`` test asks uWSGI 2.0.30 the same (the lines and their places; the files)."""

from __future__ import annotations

import time

import pytest

from simuwsgi import Simulation, StartRefusedError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'x']\n"
ARGV = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--pidfile", "p1.pid",
        "--pidfile2", "p2.pid", "--vacuum"]
#: the lines, among their neighbours, in order
LANDMARKS = ("current working directory", "writing pidfile to", "detected binary path",
             "your processes number limit", "spawned uWSGI master", "goodbye to uWSGI.",
             "VACUUM:")
EXPECTED = ["current working directory", "writing pidfile to p1.pid", "detected binary path",
            "writing pidfile to p2.pid", "your processes number limit",
            "spawned uWSGI master", "goodbye to uWSGI.", "VACUUM: pidfile removed.",
            "VACUUM: pidfile2 removed."]


def _landmarks(log: list[str]) -> list[str]:
    out = []
    for line in log:
        for mark in LANDMARKS:
            if line.startswith(mark):
                out.append(line if mark in ("writing pidfile to", "VACUUM:") else mark)
    return out


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_pid_files_and_their_lines(tmp_path, mode):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(ARGV, app_dir=tmp_path, mode=mode) as sim:
        master = next(p for p in sim.processes() if p.kind == "master")
        assert (tmp_path / "p1.pid").read_text() == f"{master.pid}\n"
        assert (tmp_path / "p2.pid").read_text() == f"{master.pid}\n"
        sim.reload()
        sim.advance(3)
        assert (tmp_path / "p1.pid").exists()
        sim.stop()
        log = list(sim.log)
    assert _landmarks(log)[:6] == EXPECTED[:6]  # (a reload writes no pid file again)
    assert _landmarks(log)[-3:] == EXPECTED[-3:]
    assert log.count("writing pidfile to p1.pid") == 1
    assert not (tmp_path / "p1.pid").exists() and not (tmp_path / "p2.pid").exists()
    assert not [line for line in log if "not simulated" in line]


def test_an_unwritable_pid_file_ends_the_start(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with pytest.raises(StartRefusedError) as refused:
        Simulation(["--master", "--wsgi-file", "app.py", "--pidfile", "no/such/dir/x.pid"],
                   app_dir=tmp_path).start()
    assert str(refused.value) == \
        'open("no/such/dir/x.pid"): No such file or directory [core/utils.c line 3602]'
    assert refused.value.status == 1


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    real = RealUwsgi(ARGV, app_dir=tmp_path)
    with real:
        time.sleep(0.5)
        pid = int((tmp_path / "p1.pid").read_text())
        assert (tmp_path / "p2.pid").read_text() == f"{pid}\n"
        assert f"spawned uWSGI master process (pid: {pid})" in real.app_log()
    time.sleep(0.5)
    assert _landmarks(real.app_log()) == EXPECTED
    assert not (tmp_path / "p1.pid").exists() and not (tmp_path / "p2.pid").exists()


@pytest.mark.real
@requires_real_uwsgi
def test_an_unwritable_pid_file_ends_the_real_start(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(["--master", "--wsgi-file", "app.py", "--pidfile", "no/such/dir/x.pid"],
                  app_dir=tmp_path).start()
    assert real.value.returncode == 1
    assert 'open("no/such/dir/x.pid"): No such file or directory [core/utils.c line 3602]' \
        in real.value.log
