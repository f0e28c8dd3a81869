"""``timeline.html``: a run on a time axis, in one self-contained page.

One lane per process (per node when the trace has several, per run for a conformance
report: sim and real side by side); requests as bars coloured by status (a request uWSGI
dropped is marked with the reason), signals as arrows from the raiser to the handler,
timer/cron firings as ticks, spool tasks from creation to completion (each attempt
visible), spawns, deaths, reloads and harakiri as markers, faults as bands. Times are on
the simulation's local clock (the zone's UTC offsets over the run are computed here, so
the page needs no time-zone database). Clicking an item shows its trace records, what
uWSGI did and why (:func:`simuwsgi.explain.narrate`) and the log lines around it.

The page is ``_timeline.html`` (our own JS and CSS, no network) with the run as JSON in
it. The JSON is columnar with a string table, so a virtual day of a busy run stays a few
MB; the page draws a density strip per lane where there are too many items to see and
the items themselves once zoomed in.

``simuwsgi view REPORT_DIR|TRACE`` writes the page (if needed) and opens it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .explain import Clock, narrate

__all__ = ["Run", "chromium", "conform_timeline", "headless", "main", "render", "report_section", "screenshot",
           "timeline_of_sim", "write_timeline"]

Row = tuple[float, str, str, str, dict[str, Any]]

#: the category of each kind (the page's filter); unlisted kinds are "other"
_CATEGORY = {
    "request": "request", "choice": "request",
    "signal": "signal",
    "timer": "timer", "rb_timer": "timer", "cron": "timer", "filemon": "timer",
    "spool": "spool", "mule": "mule",
    "spawn": "lifecycle", "death": "lifecycle", "harakiri": "lifecycle",
    "reload": "lifecycle", "instance": "lifecycle", "api": "lifecycle", "postfork": "lifecycle",
    "clock": "lifecycle",
    "fault": "fault",
}
#: kinds drawn as markers (a shape of their own) rather than ticks
_MARKERS = {"spawn", "death", "harakiri", "reload.begin", "instance.start", "instance.stop",
            "api.reload", "api.stop", "clock.step", "signal.lost", "fault.kill"}
#: kinds that are part of a bar or an arrow, not drawn on their own
_IN_SPANS = {"request.submit", "request.start", "request.end", "choice", "spool.enqueue",
             "spool.start", "spool.end", "spool.retry", "spool.remove", "spool.abort"}
#: kinds that start a signal's way to its handlers, newest first wins
_SIGNAL_SOURCES = {"signal.raise", "timer.fire", "rb_timer.fire", "cron.signal",
                   "filemon.fire"}
_LOG_LIMIT = 200_000  # log lines kept in the page (the log file has them all)


def category(kind: str) -> str:
    return _CATEGORY.get(kind.split(".", 1)[0], "other")


@dataclass
class Run:
    """One run to draw: its trace rows, its log lines (``(time, process, line)`` when the
    times are known, else plain lines) and its clock."""

    rows: Sequence[Row]
    log: Sequence[Any] = ()
    clock: Clock = field(default_factory=Clock)
    label: str = ""


class _Strings:
    """A string table: each distinct string is stored once."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.index)
        return i

    def table(self) -> list[str]:
        return list(self.index)


def _lane_order(name: str) -> tuple[int, int, str]:
    for rank, prefix in enumerate(("master", "worker", "mule", "spooler")):
        if name.startswith(prefix):
            tail = name[len(prefix):]
            return rank, int(tail) if tail.isdigit() else 0, name
    return 4, 0, name


def _offsets(clock: Clock, end: float) -> list[list[float]]:
    """``[[t, utc offset s], ...]``: the zone's offset from t on, over the run."""
    if clock.datetime(0) is None:
        return []

    def offset(t: float) -> float:
        delta = clock.datetime(t).utcoffset()  # type: ignore[union-attr]
        return delta.total_seconds() if delta else 0.0

    out = [[0.0, offset(0.0)]]
    step = 900.0  # zones change offset on quarter hours at the finest
    t = 0.0
    while t < end:
        t = min(end, (t // step + 1) * step)
        if offset(t) != out[-1][1]:  # changed in this step: find the second
            lo, hi = t - step, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if offset(mid) == offset(t) else (mid, hi)
            out.append([hi, offset(t)])
    return out


class _Builder:
    """Turns runs into the page's columnar JSON."""

    def __init__(self) -> None:
        self.s = _Strings()
        self.lanes: list[str] = []
        self.lane_of: dict[tuple[str, str, str], int] = {}
        self.rec: dict[str, list[Any]] = {"t": [], "lane": [], "kind": [], "f": [], "x": []}
        self.items: dict[str, list[Any]] = {"t0": [], "t1": [], "lane": [], "type": [],
                                            "cls": [], "label": [], "recs": []}
        self.arrows: list[list[int]] = []
        self.log: dict[str, list[Any]] = {"t": [], "lane": [], "line": []}
        self.untimed_log: list[str] = []

    def lanes_for(self, runs: Sequence[Run]) -> None:
        keys = set()
        for run in runs:
            for _t, node, proc, _k, _f in run.rows:
                keys.add((run.label, node, proc))
        nodes = {k[1] for k in keys}
        # side by side: the same process of each run next to each other
        ordered = sorted(keys, key=lambda k: (k[1], _lane_order(k[2]),
                                              [r.label for r in runs].index(k[0])))
        for key in ordered:
            label, node, proc = key
            name = proc if len(nodes) == 1 else f"{node}/{proc}"
            self.lane_of[key] = len(self.lanes)
            self.lanes.append(f"{label} {name}".strip())

    def item(self, t0: float, t1: float, lane: int, type_: str, cls: str, label: str,
             recs: list[int]) -> None:
        it = self.items
        it["t0"].append(round(t0, 6))
        it["t1"].append(round(t1, 6))
        it["lane"].append(lane)
        it["type"].append(type_)
        it["cls"].append(cls)
        it["label"].append(self.s(label))
        it["recs"].append(recs)

    def add_run(self, run: Run) -> None:
        rows = list(run.rows)
        texts = narrate(rows, run.clock)
        base = len(self.rec["t"])
        lanes = [self.lane_of[(run.label, node, proc)] for _t, node, proc, _k, _f in rows]
        for (t, _node, _proc, kind, f), lane, text in zip(rows, lanes, texts):
            self.rec["t"].append(round(t, 6))
            self.rec["lane"].append(lane)
            self.rec["kind"].append(self.s(kind))
            self.rec["f"].append(self.s(json.dumps(f, sort_keys=True, default=repr)))
            self.rec["x"].append(self.s(text))
        end = max((r[0] for r in rows), default=0.0)
        self._requests(rows, lanes, base, end)
        self._spool(rows, lanes, base, end)
        self._signals(rows, base)
        for i, ((t, _n, proc, kind, f), lane) in enumerate(zip(rows, lanes)):
            if kind in _IN_SPANS:
                continue
            if kind.startswith("fault.") and f.get("until") is not None:
                self.item(t, float(f["until"]), lane, "band", "fault", kind, [base + i])
                continue
            type_ = "mark" if kind in _MARKERS else "tick"
            self.item(t, t, lane, type_, kind.replace(".", "-"), kind, [base + i])
        self._log(run)

    def _requests(self, rows: list[Row], lanes: list[int], base: int, end: float) -> None:
        submit: dict[Any, int] = {}
        choice: dict[str, int] = {}
        open_: dict[int, tuple[int, list[int]]] = {}  # lane -> (start row, its records)
        for i, (t, _n, proc, kind, f) in enumerate(rows):
            if kind == "request.submit":
                submit[f.get("id")] = i
            elif kind == "choice":
                choice[str(f.get("picked"))] = i
            elif kind == "request.start":
                recs = [base + j for j in (submit.pop(f.get("id"), None),
                                           choice.pop(proc, None)) if j is not None]
                open_[lanes[i]] = (i, recs + [base + i])
            elif kind == "request.end" and lanes[i] in open_:
                j, recs = open_.pop(lanes[i])
                status = f.get("status")
                cls = "s5" if f.get("exception") or status is None else f"s{str(status)[0]}"
                path = rows[j][4].get("path")
                what = "no response (the app raised)" if status is None else status
                self.item(rows[j][0], t, lanes[i], "bar", cls, f"{what} {path}",
                          recs + [base + i])
            elif kind in ("death", "harakiri") and lanes[i] in open_:
                j, recs = open_[lanes[i]]
                if kind == "death":
                    del open_[lanes[i]]
                    why = f.get("reason") or "death"
                    self.item(rows[j][0], t, lanes[i], "bar", "dropped",
                              f"dropped ({why}) {rows[j][4].get('path')}", recs + [base + i])
                else:
                    recs.append(base + i)
        for j, recs in open_.values():
            self.item(rows[j][0], end, lanes[j], "bar", "dropped",
                      f"no response by the end {rows[j][4].get('path')}", recs)
        for rid, j in submit.items():
            self.item(rows[j][0], rows[j][0], lanes[j], "mark", "dropped",
                      f"request {rid}: still waiting for a worker when the run ended",
                      [base + j])

    def _spool(self, rows: list[Row], lanes: list[int], base: int, end: float) -> None:
        """A task from its spool file's creation to its last attempt's end: an attempt
        that returns SPOOL_RETRY (-1) leaves it open. Real traces name no file: the
        spooler's lane stands for the task it runs."""
        tasks: dict[Any, dict[str, Any]] = {}
        closed: dict[Any, list[int]] = {}  # the records of finished tasks, for late removes
        for i, (t, _n, _proc, kind, f) in enumerate(rows):
            if not kind.startswith("spool.") or kind in ("spool.scan", "spool.readdir_seed"):
                continue
            key = f.get("path") or lanes[i]
            if kind in ("spool.remove", "spool.abort") and key in closed:
                closed[key].append(base + i)
                continue
            task = tasks.setdefault(key, {"t0": t, "recs": [], "lane": None, "tries": 0})
            task["recs"].append(base + i)
            if kind == "spool.start":
                task["lane"] = lanes[i]
                task["tries"] += 1
            elif kind == "spool.end" and f.get("rc") != -1 or kind in ("spool.remove",
                                                                        "spool.abort"):
                closed[key] = self._spool_item(tasks.pop(key), t, lanes[i], kind)
        for task in tasks.values():
            self._spool_item(task, end, task["lane"], "pending")

    def _spool_item(self, task: dict[str, Any], t1: float, lane: int | None,
                    how: str) -> list[int]:
        if lane is None:
            lane = self.rec["lane"][task["recs"][0]]
        tries = f", {task['tries']} attempts" if task["tries"] > 1 else ""
        done = {"spool.end": "done", "pending": "not done by the end"}.get(how, how)
        cls = ("spool-retry" if task["tries"] > 1 else
               "spool" if how == "spool.end" else "dropped")
        self.item(task["t0"], t1, lane, "bar", cls, f"spool task ({done}{tries})", task["recs"])
        return task["recs"]

    def _signals(self, rows: list[Row], base: int) -> None:
        source: dict[Any, int] = {}
        for i, (_t, _n, _proc, kind, f) in enumerate(rows):
            if kind in _SIGNAL_SOURCES:
                source[f.get("num")] = i
            elif kind in ("signal.handler", "signal.unhandled") and f.get("num") in source:
                self.arrows.append([base + source[f.get("num")], base + i])

    def _log(self, run: Run) -> None:
        node_of = {proc: node for _t, node, proc, _k, _f in run.rows}
        for entry in run.log:
            if len(self.log["t"]) + len(self.untimed_log) >= _LOG_LIMIT:
                return
            if isinstance(entry, str):
                self.untimed_log.append(entry)
                continue
            t, proc, line = entry
            self.log["t"].append(round(float(t), 6))
            self.log["lane"].append(self.lane_of.get((run.label, node_of.get(proc, ""), proc), -1))
            self.log["line"].append(line)

    def _differing(self, items: dict[str, list[Any]],
                   differences: Sequence[str]) -> tuple[list[int], list[int]]:
        """The lanes and items a conformance difference names: its first words are the
        process (or process kind, ``worker``) and the trace kind (conform's format)."""
        named = set()
        for d in differences:
            words = d.split()
            if len(words) >= 2:
                named.add((words[0].rstrip(":"), words[1].rstrip(":")))
        procs = [name.split()[-1].rsplit("/", 1)[-1] for name in self.lanes]
        lanes = sorted({i for i, p in enumerate(procs) for g, _k in named
                        if g in (p, p.rstrip("0123456789"))})
        kinds = {k for _g, k in named}
        strings = self.s.table()
        marked = [recs[0] for lane, recs in zip(items["lane"], items["recs"])
                  if lane in lanes and any(strings[self.rec["kind"][r]] in kinds for r in recs)]
        return lanes, marked

    def data(self, title: str, runs: Sequence[Run], differences: Sequence[str]) -> dict[str, Any]:
        end = max((r[0] for run in runs for r in run.rows), default=0.0)
        clock = runs[0].clock if runs else Clock()
        # items drawn per lane in time order: the page binary-searches them
        order = sorted(range(len(self.items["t0"])),
                       key=lambda k: (self.items["lane"][k], self.items["t0"][k]))
        items = {k: [v[i] for i in order] for k, v in self.items.items()}
        lanes, marked = self._differing(items, differences)
        packed = self._pack(items)
        strings = self.s.table()  # complete now: packing adds the types and classes
        rec = dict(self.rec, t=_deltas(_micro(self.rec["t"])))
        log = dict(self.log, t=_deltas(_micro(self.log["t"])))
        return {"title": title, "tz": clock.tz, "start": clock.start_epoch,
                "offsets": _offsets(clock, end), "end": end, "lanes": self.lanes,
                "rec": rec, "items": packed, "strings": strings,
                "arrows": [_deltas([a for a, _b in self.arrows]),
                           _deltas([b for _a, b in self.arrows])],
                "log": log, "untimedLog": self.untimed_log,
                "differences": list(differences), "highlight": lanes, "marked": marked,
                "categories": sorted(set(_CATEGORY.values()) | {"other"}),
                "markers": sorted(self.s.index[k] for k in _MARKERS if k in self.s.index),
                "kindCategory": {i: category(strings[i]) for i in set(self.rec["kind"])}}


    def _pack(self, items: dict[str, list[Any]]) -> dict[str, Any]:
        """The items as the page reads them: times in µs as differences from the previous
        item, the duration, type and class through the string table, the first record as
        a difference, the other records only for the items that have them."""
        # a tick or marker of one record is that record: the page rebuilds it from it
        kinds = self.rec["kind"]
        strings = self.s.table()
        point = [len(recs) == 1 and type_ in ("tick", "mark") and label == kinds[recs[0]]
                 and cls == strings[label].replace(".", "-")
                 for type_, cls, label, recs in zip(items["type"], items["cls"],
                                                    items["label"], items["recs"])]
        keep = [i for i, p in enumerate(point) if not p]
        full = {k: [v[i] for i in keep] for k, v in items.items()}
        t0 = _micro(full["t0"])
        return {"points": _deltas([recs[0] for recs, p in zip(items["recs"], point) if p]),
                "t0": _deltas(t0),
                "d": [b - a for a, b in zip(t0, _micro(full["t1"]))],
                "lane": full["lane"], "label": full["label"],
                "type": [self.s(v) for v in full["type"]],
                "cls": [self.s(v) for v in full["cls"]],
                "r": _deltas([recs[0] for recs in full["recs"]]),
                "more": {str(i): recs[1:] for i, recs in enumerate(full["recs"])
                         if len(recs) > 1}}


def _micro(times: Iterable[float]) -> list[int]:
    return [round(t * 1e6) for t in times]


def _deltas(values: Sequence[int]) -> list[int]:
    """Each value minus the one before: small numbers, short JSON (the page sums them)."""
    return [v - p for p, v in zip([0, *values[:-1]], values)]


def render(title: str, runs: Sequence[Run], differences: Sequence[str] = ()) -> str:
    """The page for ``runs`` (one run; or sim and real of a conformance report)."""
    builder = _Builder()
    builder.lanes_for(runs)
    for run in runs:
        builder.add_run(run)
    data = json.dumps(builder.data(title, runs, differences), separators=(",", ":"))
    # "</" would end the <script> element early
    data = data.replace("</", "<\\/")
    page = resources.files("simuwsgi").joinpath("_timeline.html").read_text(encoding="utf-8")
    return page.replace("__TITLE__", _html_escape(title)).replace("/*__DATA__*/null", data)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_timeline(path: str | Path, title: str, runs: Sequence[Run],
                   differences: Sequence[str] = ()) -> Path:
    out = Path(path)
    out.write_text(render(title, runs, differences), encoding="utf-8")
    return out


def timeline_of_sim(sim: Any, directory: str | Path, title: str) -> str:
    """``timeline.html`` (and ``timeline.png``) of a finished run (Simulation or real run)
    in ``directory``; the section report.md gives them."""
    lines = getattr(getattr(sim, "inst", None), "log_lines", None)
    log: Iterable[Any] = lines if lines is not None else list(getattr(sim, "log", []))
    run = Run(rows=sim.trace.rows(), log=list(log), clock=Clock.of(sim))
    write_timeline(Path(directory) / "timeline.html", title, [run])
    lanes = len({(node, proc) for _t, node, proc, _k, _f in run.rows})
    return report_section(Path(directory), lanes)


#: Debian's package; the command says how to get it when it is missing
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


def chromium() -> str | None:
    """The path of a Chromium (or Chrome) to drive headless, or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def headless(url: str, *args: str, timeout: float = 60.0) -> Any:
    """Run headless Chromium on ``url`` (a private profile, no network needed);
    ``subprocess.CompletedProcess``, stdout and stderr as text."""
    import subprocess
    import tempfile

    browser = chromium()
    if browser is None:
        raise FileNotFoundError(f"no Chromium on this machine ({CHROMIUM_INSTALL})")
    with tempfile.TemporaryDirectory(prefix="simuwsgi-chromium-") as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", *args, url],
            capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(html: Path, png: Path, lanes: int) -> bool:
    """``png``: the page as Chromium draws it; False when there is no Chromium."""
    import subprocess

    if chromium() is None:
        return False
    height = 260 + 26 * min(lanes, 40)  # the page scrolls its lanes: the first 40 show
    try:
        done = headless(html.resolve().as_uri(), f"--window-size=1400,{height}",
                        f"--screenshot={png.resolve()}")
    except (OSError, subprocess.TimeoutExpired):
        return False  # a browser that cannot run costs the picture, not the report
    return done.returncode == 0 and png.is_file()


def report_section(directory: Path, lanes: int) -> str:
    """The lines report.md gives the timeline (writing ``timeline.png`` if it can)."""
    png = directory / "timeline.png"
    if screenshot(directory / "timeline.html", png, lanes):
        return ("## Timeline\n\nOpen `timeline.html` in a browser (zoom, pan, click an item "
                "for its records and why).\n\n![timeline](timeline.png)\n")
    why = (f"there is no Chromium here to draw it ({CHROMIUM_INSTALL})" if chromium() is None
           else f"{chromium()} failed to draw it")
    return ("## Timeline\n\nOpen `timeline.html` in a browser (zoom, pan, click an item). "
            f"No `timeline.png`: {why}.\n")


def conform_timeline(result: Any, directory: Path, tz: str = "UTC") -> Path:
    """``timeline.html`` of a conformance report: each run's lanes side by side on one
    axis (the sim run started at the real run's instant), the differences on top."""
    start = result.runs["real"].ready_wall if "real" in result.runs else None
    order = sorted(result.runs, key=lambda m: ("sim", "real", "fork").index(m)
                   if m in ("sim", "real", "fork") else 3)
    runs = [Run(rows=result.runs[m].trace.rows(), log=list(result.runs[m].log),
                clock=Clock(start, tz), label=m) for m in order]
    return write_timeline(directory / "timeline.html", f"conformance of {result.scenario}",
                          runs, result.differences)


def _from_path(source: Path) -> Path:
    """The timeline of a report directory (written if missing) or of a trace file."""
    from .explain import load_run

    if source.is_dir() and (source / "timeline.html").is_file():
        return source / "timeline.html"
    directory = source if source.is_dir() else source.parent
    rows, clock = load_run(str(source))
    log_file = directory / "log.txt"
    log = log_file.read_text(errors="replace").splitlines() if log_file.is_file() else []
    target = directory / ("timeline.html" if source.is_dir() else source.stem + ".html")
    return write_timeline(target, source.name, [Run(rows=rows, log=log, clock=clock)])


def _open(path: Path) -> None:
    """Open a browser only for a person at a display (never in CI or over ssh)."""
    if not (sys.stdout.isatty() and (os.environ.get("DISPLAY") or
                                     os.environ.get("WAYLAND_DISPLAY") or
                                     sys.platform == "darwin")):
        return
    import webbrowser

    webbrowser.open(path.resolve().as_uri())


def main(argv: list[str] | None = None) -> int:
    """``simuwsgi view REPORT_DIR|TRACE``: 0 written (and opened), 2 bad input."""
    import argparse

    p = argparse.ArgumentParser(prog="simuwsgi view",
                                description="Write (if needed) and open a run's timeline.html.")
    p.add_argument("source", help="a report directory or a trace file (msgpack)")
    args = p.parse_args(argv)
    source = Path(args.source)
    if not source.exists():
        print(f"simuwsgi view: {source}: no such report directory or trace", file=sys.stderr)
        return 2
    try:
        path = _from_path(source)
    except (ValueError, OSError) as exc:
        print(f"simuwsgi view: {exc}", file=sys.stderr)
        return 2
    print(path)
    _open(path)
    return 0
