"""timeline.html: what the page is given (lanes, bars, markers, arrows, the local clock),
self-containment, size on a large run, ``simuwsgi view`` and conformance timelines.
The page's drawing in a real browser is tests/test_timeline_browser.py."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

from simuwsgi import timeline
from simuwsgi.cli import main as cli_main
from simuwsgi.conform import ConformResult
from simuwsgi.explain import Clock
from simuwsgi.runner import RunResult
from simuwsgi.timeline import Run, conform_timeline, render
from simuwsgi._core.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scenarios" / "quickstart.py"


def page_data(html: str) -> dict[str, Any]:
    """The page's data, decoded as the page decodes it (timeline.py's ``_pack``)."""
    found = re.search(r"const D = (.*?);\n", html)
    assert found, "no data in the page"
    data = json.loads(found.group(1).replace("<\\/", "</"))
    s, packed = data["strings"], data["items"]
    rec = data["rec"]
    rec["t"] = [t / 1e6 for t in accumulate(rec["t"])]
    t0 = [t / 1e6 for t in accumulate(packed["t0"])]
    rows = [(lane, t, t + d / 1e6, s[type_], s[cls], label, [r, *packed["more"].get(str(i), [])])
            for i, (lane, t, d, type_, cls, label, r) in enumerate(zip(
                packed["lane"], t0, packed["d"], packed["type"], packed["cls"], packed["label"],
                accumulate(packed["r"])))]
    for r in accumulate(packed["points"]):
        kind = rec["kind"][r]
        rows.append((rec["lane"][r], rec["t"][r], rec["t"][r],
                     "mark" if kind in data["markers"] else "tick",
                     s[kind].replace(".", "-"), kind, [r]))
    rows.sort(key=lambda row: row[:2])
    data["items"] = {k: [row[j] for row in rows]
                     for j, k in enumerate(("lane", "t0", "t1", "type", "cls", "label", "recs"))}
    data["log"]["t"] = [t / 1e6 for t in accumulate(data["log"]["t"])]
    data["arrows"] = list(zip(accumulate(data["arrows"][0]), accumulate(data["arrows"][1])))
    return data


def items(data: dict[str, Any], cls: str) -> list[dict[str, Any]]:
    it = data["items"]
    return [{k: it[k][i] for k in it} | {"label": data["strings"][it["label"][i]],
                                           "lane": data["lanes"][it["lane"][i]]}
            for i in range(len(it["t0"])) if it["cls"][i] == cls]


@pytest.fixture(scope="module")
def quickstart_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert cli_main(["run", str(QUICKSTART), "--report", str(out), "--quiet"]) == 0
    return out / "quickstart-seed2026"


def test_every_report_has_a_self_contained_timeline(quickstart_report: Path) -> None:
    html = (quickstart_report / "timeline.html").read_text()
    # nothing fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    assert len(html) < 2_000_000
    assert "## Timeline" in (quickstart_report / "report.md").read_text()


def test_quickstart_lanes_bars_markers_and_arrows(quickstart_report: Path) -> None:
    data = page_data((quickstart_report / "timeline.html").read_text())
    assert data["lanes"] == ["master", "worker1", "worker2", "worker3", "worker4"]
    ok = items(data, "s2")
    assert len(ok) == 485 and all(i["lane"].startswith("worker") for i in ok)
    # the crash (an exception, no status) is a red bar
    assert [i["label"] for i in items(data, "s5")] == ["no response (the app raised) /crash"]
    # the three slow reports are cut by harakiri: dropped bars ending at the worker's death
    dropped = items(data, "dropped")
    assert [i["label"] for i in dropped] == ["dropped (harakiri) /report?45"] * 3
    assert all(i["t1"] - i["t0"] == pytest.approx(21.0) for i in dropped)
    harakiri = items(data, "harakiri")
    assert [(i["lane"], i["type"]) for i in harakiri] == [
        ("worker2", "mark"), ("worker3", "mark"), ("worker4", "mark")]
    assert len(items(data, "reload-begin")) == 1 and len(items(data, "death")) == 13
    # the /refresh signal: one arrow from the raising worker to each worker's handler
    rec = data["rec"]
    arrows = [(data["lanes"][rec["lane"][a]], data["lanes"][rec["lane"][b]])
              for a, b in data["arrows"]]
    assert sorted(arrows) == [("worker4", f"worker{n}") for n in range(1, 5)]


def test_clock_follows_the_zone_across_the_dst_change(quickstart_report: Path) -> None:
    data = page_data((quickstart_report / "timeline.html").read_text())
    assert data["tz"] == "Europe/Paris"
    # 2026-03-28 06:00 CET; Paris goes to CEST at 01:00 UTC on the 29th, 20 h later
    assert data["offsets"] == [[0.0, 3600.0], [72000.0, 7200.0]]


def test_clicking_a_request_has_its_records_story_and_log(quickstart_report: Path) -> None:
    data = page_data((quickstart_report / "timeline.html").read_text())
    first = next(i for i in items(data, "dropped"))
    s, rec = data["strings"], data["rec"]
    kinds = [s[rec["kind"][r]] for r in first["recs"]]
    assert kinds == ["request.submit", "choice", "request.start", "harakiri", "death"]
    story = [s[rec["x"][r]] for r in first["recs"]]
    assert story[3].startswith("HARAKIRI: worker 2 exceeded 20 s on /report?45")
    # the log lines carry their virtual time, so the page finds those around the item
    log = data["log"]
    near = [line for t, line in zip(log["t"], log["line"]) if first["t0"] <= t <= first["t1"]]
    assert any("HARAKIRI" in line for line in near), near


def _rows(n_nodes: int = 1) -> list[tuple]:
    return [(0.0, f"node{k}", "master", "spawn", {"pid": 1}) for k in range(n_nodes)] + [
        (1.0, f"node{k}", "worker1", "spawn", {"pid": 2}) for k in range(n_nodes)]


def test_one_lane_per_process_and_node() -> None:
    data = page_data(render("cluster", [Run(rows=_rows(2))]))
    assert data["lanes"] == ["node0/master", "node0/worker1", "node1/master", "node1/worker1"]
    data = page_data(render("one", [Run(rows=_rows(1))]))
    assert data["lanes"] == ["master", "worker1"]


def test_a_spool_task_spans_its_attempts() -> None:
    path = "/spool/uwsgi_spoolfile_1"
    rows = [(0.0, "node0", "worker1", "spool.enqueue", {"path": path}),
            (0.5, "node0", "spooler1", "spool.start", {"path": path}),
            (0.6, "node0", "spooler1", "spool.end", {"path": path, "rc": -1}),
            (0.6, "node0", "spooler1", "spool.retry", {"path": path, "rc": -1}),
            (1.5, "node0", "spooler1", "spool.start", {"path": path}),
            (1.7, "node0", "spooler1", "spool.end", {"path": path, "rc": -2}),
            (1.7, "node0", "spooler1", "spool.remove", {"path": path, "reason": "done"})]
    data = page_data(render("spool", [Run(rows=rows)]))
    [task] = items(data, "spool-retry")
    assert (task["t0"], task["t1"], task["lane"]) == (0.0, 1.7, "spooler1")
    assert task["label"] == "spool task (done, 2 attempts)" and len(task["recs"]) == 7
    story = [data["strings"][data["rec"]["x"][r]] for r in task["recs"]]
    assert "task retried: the spooler function returned SPOOL_RETRY" in story[3]


def test_faults_with_an_end_are_bands() -> None:
    rows = [(0.0, "node0", "master", "spawn", {"pid": 1}),
            (2.0, "node0", "worker1", "fault.partition", {"until": 5.0})]
    data = page_data(render("faults", [Run(rows=rows)]))
    [band] = [i for i in items(data, "fault") if i["type"] == "band"]
    assert (band["t0"], band["t1"]) == (2.0, 5.0)


def test_a_large_run_stays_small() -> None:
    """A virtual day of a 1 s timer to 4 workers: ~520k records, well under 20 MB."""
    rows: list[tuple] = [(0.0, "node0", "master", "timer.add", {"num": 1, "secs": 1})]
    for s in range(1, 86401):
        rows.append((float(s), "node0", "master", "timer.fire", {"num": 1}))
        for w in range(1, 5):
            rows.append((s + w * 1e-4, "node0", f"worker{w}", "signal.handler", {"num": 1}))
    log = [(float(s), "master", f"timer {s}") for s in range(1, 86401)]
    html = render("big", [Run(rows=rows, log=log, clock=Clock(1.7e9, "UTC"))])
    assert len(rows) > 430_000
    assert len(html.encode()) < 20_000_000, len(html) / 1e6
    data = page_data(html)
    assert len(data["arrows"]) == 4 * 86400
    # the story is the same sentence each time: stored once
    assert len(data["strings"]) < 100


def test_view_writes_the_timeline_of_a_trace(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    trace = Trace()
    for t, _node, proc, kind, fields in _rows():
        trace.add(t, proc, kind, fields)
    trace.save(tmp_path / "run.msgpack")
    assert cli_main(["view", str(tmp_path / "run.msgpack")]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "run.html")
    assert page_data(Path(out).read_text())["lanes"] == ["master", "worker1"]


@pytest.mark.parametrize("content", [None, b"not msgpack at all"])
def test_view_refuses_what_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        content: bytes | None) -> None:
    target = tmp_path / "x.msgpack"
    if content is not None:
        target.write_bytes(content)
    assert cli_main(["view", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simuwsgi view: ") and err.count("\n") == 1, err


def test_conformance_timeline_puts_the_runs_side_by_side(tmp_path: Path) -> None:
    def run(mode: str, t: float) -> RunResult:
        trace = Trace()
        trace.add(0.0, "master", "spawn", {"pid": 1})
        trace.add(t, "worker1", "request.start", {"id": 1, "method": "GET", "path": "/"})
        trace.add(t, "worker1", "request.end", {"id": 1, "status": 200, "bytes": 2})
        return RunResult(mode=mode, trace=trace, log=[], responses=[], ready_wall=1.7e9)

    diff = "worker request.end status=200 bytes=2: times differ by more than 1.5 s"
    result = ConformResult("demo", [diff], {"real": run("real", 1.0), "sim": run("sim", 4.0)},
                           {})
    data = page_data(conform_timeline(result, tmp_path).read_text())
    assert data["lanes"] == ["sim master", "real master", "sim worker1", "real worker1"]
    assert data["differences"] == [diff]
    assert [data["lanes"][i] for i in data["highlight"]] == ["sim worker1", "real worker1"]
    marked = {data["rec"]["t"][r] for r in data["marked"]}
    assert marked == {1.0, 4.0}


@pytest.mark.parametrize("browser, why", [
    (None, "there is no Chromium here"), ("/bin/false", "/bin/false failed to draw it")])
def test_without_a_browser_the_report_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              browser: str | None, why: str) -> None:
    monkeypatch.setattr(timeline, "chromium", lambda: browser)
    assert cli_main(["run", "--for", "5", "--report", str(tmp_path), "--quiet",
                     "--allow-no-app", "--", "--master", "--processes", "1"]) == 0
    [out] = tmp_path.iterdir()
    assert (out / "timeline.html").is_file() and not (out / "timeline.png").exists()
    assert f"No `timeline.png`: {why}" in (out / "report.md").read_text()


def test_requests_without_an_answer_are_marked_with_why() -> None:
    rows = [(0.0, "node0", "master", "request.submit", {"id": 1, "method": "GET", "path": "/a"}),
            (0.0, "node0", "worker1", "request.start", {"id": 1, "method": "GET", "path": "/a"}),
            (1.0, "node0", "master", "request.submit", {"id": 2, "method": "GET", "path": "/b"}),
            (9.0, "node0", "master", "spawn", {"pid": 1})]
    data = page_data(render("busy", [Run(rows=rows)]))
    assert sorted((i["lane"], i["type"], i["t0"], i["t1"], i["label"])
                  for i in items(data, "dropped")) == [
        ("master", "mark", 1.0, 1.0,
         "request 2: still waiting for a worker when the run ended"),
        ("worker1", "bar", 0.0, 9.0, "no response by the end /a")]


def test_a_cluster_has_lanes_per_node(tmp_path: Path) -> None:
    from simuwsgi.cluster import Cluster

    (tmp_path / "app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n")
    options = ["--master", "--processes", "1", "--socket", ":3031", "--wsgi-file", "app.py"]
    cluster = Cluster()
    cluster.add("a", options, app_dir=tmp_path)
    cluster.add("b", options, app_dir=tmp_path)
    with cluster:
        assert cluster["b"].get("/").body == b"ok"
        data = page_data(render("cluster", [Run(rows=cluster.trace.rows())]))
    # the cluster's own events (its network, its nodes joining) have a lane of their own
    assert data["lanes"] == ["a/master", "a/worker1", "b/master", "b/worker1",
                             "cluster/cluster"]
    assert [i["lane"] for i in items(data, "s2")] == ["b/worker1"]
