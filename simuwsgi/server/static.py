"""Static files served by the worker itself, as uWSGI's ``core/static.c`` serves them.

What it models (``uwsgi_parse_vars``'s static checks in ``core/protocol.c``,
``uwsgi_file_serve``, ``uwsgi_real_file_serve``, ``uwsgi_build_mime_dict``):

* the options, in uWSGI's order of checks: ``--static-skip-ext`` (a ``PATH_INFO`` with
  one of those endings skips every check), ``--check-static DIR`` (``DIR`` +
  ``PATH_INFO``), ``--static-map MOUNT=DIR`` (``DIR`` + what follows ``MOUNT``; ``DIR``
  may be a file), ``--static-map2 MOUNT=DIR`` (``DIR`` + the whole ``PATH_INFO``),
  ``--check-static-docroot`` (the ``DOCUMENT_ROOT`` var); the first file found
  answers; ``PATH_INFO`` is the one ``--manage-script-name`` left;
* a file is served when its real path is under the directory (or under a
  ``--static-safe`` path; else uWSGI's ``security error`` line), is a regular file or
  a directory holding a ``--static-index`` file (``PATH_INFO`` + index is appended to
  the vars, as uWSGI does, even when the method then falls through), the method is
  GET or HEAD, and its ending is not a ``--static-skip-ext``; anything else falls
  through to the app;
* the answer: the file's ``.br``/``.gz`` sibling instead when the client accepts that
  encoding and ``--static-gzip-all``/``-dir``/``-ext`` or a ``--static-gzip`` regexp
  covers the file (``Content-Encoding``; the type is the plain file's);
  ``304 Not Modified`` (headers only) when ``If-Modified-Since`` is not older than the
  file; with ``--honour-range``, the first range of ``Range`` gives ``206 Partial
  Content`` (``Content-Range``; unless ``If-Range`` is not older than the file), an
  unsatisfiable or malformed one ``416`` (``Content-Range: bytes */SIZE``, no body);
  else ``200 OK``; then the ``Expires`` of the first
  ``--static-expires``/``-mtime`` (file name regexp), ``--static-expires-path-info``
  and ``--static-expires-uri`` (and their ``-mtime``) that matches, ``Content-Type``
  from the mime types (``--mimefile``, default ``/etc/mime.types``, read as uWSGI reads
  it), the ``Expires`` of ``--static-expires-type``/``-type-mtime``, then
  ``Content-Length`` and ``Last-Modified`` and the file by ``sendfile()`` (HEAD: no
  body); ``--file-serve-mode x-sendfile|nginx`` sends an ``X-Sendfile`` /
  ``X-Accel-Redirect`` header and ``Last-Modified`` instead of the file;
* the request is logged as app -1 (``[pid: P|app: -1|req: -1/T]``), ``via sendfile()``.

Files are read from the real filesystem, read-only; ``Expires`` counts from the
request's virtual start. Left out: ``--static-cache-paths``, routing rules before a
static file, offloading.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker
    from .workers import Request

__all__ = ["StaticFiles", "http_date", "startup_lines"]

_DEFAULT_MIMEFILE = "/etc/mime.types"
_MONTHS = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}
#: the regexp Expires options: (option, what it matches: file, PATH_INFO, URI, mtime)
_EXPIRES = (("static-expires", "", False), ("static-expires-mtime", "", True),
            ("static-expires-path-info", "-path-info", False),
            ("static-expires-path-info-mtime", "-path-info", True),
            ("static-expires-uri", "-uri", False), ("static-expires-uri-mtime", "-uri", True))
#: ``enum uwsgi_range``
_RANGE_NOT_PARSED, _RANGE_PARSED, _RANGE_VALID, _RANGE_INVALID = range(4)
_INT64_MAX = 2 ** 63 - 1
_SERVE_MODES = {"x-sendfile": 2, "xsendfile": 2, "apache": 2, "apache2": 2,
                "x-accel-redirect": 1, "xaccelredirect": 1, "nginx": 1}


def http_date(t: float) -> str:
    """``uwsgi_http_date``: RFC 1123 in GMT."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(int(t)))


def _parse_http_date(value: str) -> int:
    """``parse_http_date``: RFC 1123 only; anything else is 0."""
    try:
        month = _MONTHS[value[8:11]]
        return calendar.timegm((int(value[12:16]), month + 1, int(value[5:7]),
                                int(value[17:19]), int(value[20:22]), int(value[23:25]),
                                0, 0, 0))
    except (KeyError, ValueError):
        return 0


def _mime_types(path: Path) -> tuple[dict[str, str], int]:
    """``uwsgi_build_mime_dict``: extension -> type (the first listing wins) and the
    number of entries uWSGI counts (a one-letter extension ending a line is not one)."""
    types: dict[str, str] = {}
    entries = 0
    for line in path.read_bytes().decode("latin-1").split("\n"):
        if not line[:1].isalnum():
            continue
        parts = re.split(r"([ \t]+)", line)
        if len(parts) < 3 or not parts[2]:
            continue
        exts = [p for p in parts[2:] if p and not p.isspace()]
        if len(exts[-1]) <= 1 and not re.search(r"[ \t]$", line):
            exts.pop()
        for ext in exts:
            types.setdefault(ext, parts[0])
            entries += 1
    return types, entries


@dataclass
class StaticFiles:
    """One instance's static file options, and the mime types they read."""

    inst: Instance
    skip_ext: list[str]
    #: (kind: check, map or map2; mountpoint; directory or file), in uWSGI's order
    checks: list[tuple[str, str, str]]
    docroot_check: bool
    index: list[str]
    safe: list[str]
    #: (what the regexp matches: '' file, '-path-info', '-uri'; regexp; seconds; from
    #: the file's mtime instead of the request's start)
    expires: list[tuple[str, re.Pattern[str], int, bool]]
    expires_type: list[tuple[str, int, bool]]
    serve_mode: int
    mimefiles: list[str]
    honour_range: bool
    gzip_all: bool
    gzip_dirs: list[str]
    gzip_exts: list[str]
    gzip_regexps: list[re.Pattern[str]]
    mime: dict[str, str] = field(default_factory=dict)
    _real: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_options(cls, inst: Instance, always: bool = False) -> StaticFiles | None:
        """The instance's static file serving, None without a static option (``always``:
        the serving itself, for a route's ``static`` action)."""
        opts = inst.opts
        checks = [("check", "", d) for d in opts.strings("check-static", "static-check")]
        for name, kind in (("static-map", "map"), ("static-map2", "map2")):
            for value in opts.strings(name):
                mountpoint, sep, docroot = value.partition("=")
                if not sep:
                    from .._errors import StartRefusedError

                    raise StartRefusedError("invalid document root in static map, syntax "
                                            "mountpoint=docroot")
                checks.append((kind, mountpoint, docroot))
        docroot_check = opts.flag("check-static-docroot")
        if not checks and not docroot_check and not always:
            return None
        expires = []
        for name, what, mtime in _EXPIRES:
            for value in opts.strings(name):
                pattern, _sep, delta = value.partition(" ")
                expires.append((what, re.compile(pattern), _str_num(delta), mtime))
        expires_type = []
        for name, mtime in (("static-expires-type", False), ("static-expires-type-mtime", True)):
            for value in opts.strings(name):
                mime, _sep, delta = value.partition("=")
                expires_type.append((mime, _str_num(delta), mtime))
        mode = str(opts.last("file-serve-mode", "fileserve-mode") or "").lower()
        return cls(inst=inst, skip_ext=opts.strings("static-skip-ext"), checks=checks,
                   docroot_check=docroot_check, index=opts.strings("static-index"),
                   safe=opts.strings("static-safe"), expires=expires,
                   expires_type=expires_type, serve_mode=_SERVE_MODES.get(mode, 0),
                   mimefiles=opts.strings("mimefile") or [_DEFAULT_MIMEFILE],
                   honour_range=opts.flag("honour-range"),
                   gzip_all=opts.flag("static-gzip-all"),
                   gzip_dirs=opts.strings("static-gzip-dir"),
                   gzip_exts=opts.strings("static-gzip-ext"),
                   gzip_regexps=[re.compile(r) for r in opts.strings("static-gzip")])

    def option_lines(self) -> list[str]:
        """The lines uWSGI logs while it reads the options (before its banner)."""
        return [f"[uwsgi-static] added check for {d}" if kind == "check" else
                f"[uwsgi-static] added mapping for {m} => {d}" for kind, m, d in self.checks]

    def mime_lines(self) -> list[str]:
        """``uwsgi_build_mime_dict``'s lines (the types are read now, as at start)."""
        lines = []
        for path in self.mimefiles:
            where = self.inst.app.base_dir / path  # relative to uWSGI's directory
            if not os.access(where, os.R_OK):
                lines.append(f"!!! no {path} file found !!!")
                continue
            types, entries = _mime_types(where)
            for ext, mime in types.items():
                self.mime.setdefault(ext, mime)
            lines.append(f"building mime-types dictionary from file {path}...{entries} "
                         "entry found")
        return lines

    # -- the checks --------------------------------------------------------------------
    def serve(self, w: Worker, req: Request, env: dict[str, str]) -> bool:
        """True when a static file answered the request (on ``req.conn``)."""
        path_info = env.get("PATH_INFO", "")
        if any(path_info.endswith(ext) for ext in self.skip_ext):
            return False
        for kind, mountpoint, docroot in self.checks:
            if not path_info.startswith(mountpoint):
                continue
            real = self._realpath(docroot)
            if real is None:
                continue
            rest = path_info[len(mountpoint):] if kind == "map" else path_info
            if self._file_serve(w, req, env, real, rest,
                                kind != "check" and os.path.isfile(real)):
                return True
        root = env.get("DOCUMENT_ROOT")
        if self.docroot_check and root:
            return self._file_serve(w, req, env, str(self.inst.app.base_dir / root),
                                    path_info, False)
        return False

    def _realpath(self, docroot: str) -> str | None:
        """The directory's real path, resolved once (relative to uWSGI's directory)."""
        if docroot not in self._real:
            path = self.inst.app.base_dir / docroot
            self._real[docroot] = os.path.realpath(path) if path.exists() else None
        return self._real[docroot]

    def _file_serve(self, w: Worker, req: Request, env: dict[str, str], docroot: str,
                    rest: str, is_a_file: bool, conn: Any = None) -> bool:
        """``uwsgi_file_serve`` (on ``conn``, a response under way, for an error or
        response route's ``static``)."""
        filename = docroot if is_a_file else f"{docroot}/{rest}"
        if not os.path.exists(filename):
            return False
        real = os.path.realpath(filename)
        if not real.startswith(docroot) and not any(real.startswith(s) for s in self.safe):
            self.inst.log(f"[uwsgi-fileserve] security error: {real} is not under "
                          f"{docroot} or a safe path")
            return False
        if os.path.isdir(real):
            index = next((i for i in self.index if os.path.isfile(os.path.join(real, i))),
                         None)
            if index is None:
                return False
            real = os.path.join(real, index)
            path_info = env.get("PATH_INFO", "")
            slash = "" if not path_info or path_info.endswith("/") else "/"
            req.appended_vars = (*req.appended_vars,
                                 ("PATH_INFO", path_info + slash + index))
        elif not os.path.isfile(real):
            return False
        if req.method not in ("GET", "HEAD"):
            return False
        if any(real.endswith(ext) for ext in self.skip_ext):
            return False
        self._real_file_serve(w, req, env, real, conn)
        return True

    def _real_file_serve(self, w: Worker, req: Request, env: dict[str, str],
                         real: str, conn: Any = None) -> None:
        """``uwsgi_real_file_serve``: the response, on a new connection unless one is
        given."""
        from .wire import Connection

        if conn is None:
            conn = req.conn = Connection(self.inst, req, w)
            conn.app_id = -1
            conn.switches = req.switches  # waits for a --post-buffering body
        mime = self._mime_type(real)  # of the name asked for, not of its .gz/.br
        real, encoding = self._compressed(env, real)
        st = os.stat(real)
        ims = env.get("HTTP_IF_MODIFIED_SINCE")
        if ims and st.st_mtime <= _parse_http_date(ims):
            conn._prepare(b"304 Not Modified")
            conn.write_headers()
            return
        fsize = st.st_size
        parsed, start, end = _fix_range(*self._range(env), fsize)
        if parsed == _RANGE_INVALID:
            conn._prepare(b"416 Requested Range Not Satisfiable")
            conn._add_header("Content-Range", f"bytes */{fsize}")
            return
        if_range = env.get("HTTP_IF_RANGE") if self.honour_range else None
        if parsed == _RANGE_VALID and (_parse_http_date(if_range) if if_range else 0) < st.st_mtime:
            fsize = end - start + 1
            conn._prepare(b"206 Partial Content")
        else:
            conn._prepare(b"200 OK")
        now = int(self.inst.wall())
        where = {"": real, "-path-info": env.get("PATH_INFO", ""),
                 "-uri": env.get("REQUEST_URI", "")}
        done = set()
        for what, pattern, delta, mtime in self.expires:
            if what not in done and pattern.search(where[what]):
                done.add(what)  # the first match of each kind (its -mtime after it)
                conn._add_header("Expires", http_date((st.st_mtime if mtime else now) + delta))
        if encoding:
            conn._add_header("Content-Encoding", encoding)
        if mime is not None:
            conn._add_header("Content-Type", mime)
            for name, delta, mtime in self.expires_type:
                if name == mime:
                    conn._add_header("Expires",
                                     http_date((st.st_mtime if mtime else now) + delta))
                    break
        self._send(conn, req, real, st, fsize, parsed, start, end)
        conn.status_code = 200  # what the log shows, even for a 206 (wsgi_req->status)

    def _send(self, conn: Any, req: Request, real: str, st: os.stat_result, fsize: int,
              parsed: int, start: int, end: int) -> None:
        """The last headers, and the file (raw mode, not for HEAD) or its header."""
        modified = http_date(st.st_mtime)
        if self.serve_mode:
            conn._add_header("X-Accel-Redirect" if self.serve_mode == 1 else "X-Sendfile",
                             real)
            conn._add_header("Last-Modified", modified)
            return
        conn._add_header("Content-Length", str(fsize))
        if parsed == _RANGE_VALID:  # even when If-Range made it a 200, as uWSGI does
            conn._add_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        conn._add_header("Last-Modified", modified)
        if req.method == "HEAD":
            return
        fd = os.open(real, os.O_RDONLY)
        try:
            conn.sendfile(fd, start, fsize)
        finally:
            os.close(fd)

    def _range(self, env: dict[str, str]) -> tuple[int, int, int]:
        """``uwsgi_parse_http_range`` of the first range of ``Range`` (with
        ``--honour-range``): (state, from, to)."""
        value = env.get("HTTP_RANGE") if self.honour_range else None
        if value is None:
            return _RANGE_NOT_PARSED, 0, 0
        spec = value.split(",", 1)[0]
        if len(spec) < 8 or spec.find("=") != 5 or not spec.startswith("bytes"):
            return _RANGE_INVALID, 0, 0
        rng = spec[6:]
        dash = rng.find("-")
        if dash < 0:
            return _RANGE_INVALID, 0, 0
        if dash:
            start = _str_num(rng[:dash])
            end = _INT64_MAX if dash == len(rng) - 1 else _str_num(rng[dash + 1:])
            return (_RANGE_PARSED, start, end) if end >= start else (_RANGE_INVALID, 0, 0)
        start = -_str_num(rng[1:])  # bytes=-N: the last N bytes
        return (_RANGE_PARSED, start, _INT64_MAX) if start < 0 else (_RANGE_INVALID, 0, 0)

    def _compressed(self, env: dict[str, str], real: str) -> tuple[str, str]:
        """``uwsgi_static_want_gzip``: the ``.br`` or ``.gz`` next to the file, when the
        client accepts it and a ``--static-gzip*`` option covers the file."""
        accepted = env.get("HTTP_ACCEPT_ENCODING", "")
        if ("br" not in accepted and "gzip" not in accepted) or not (
                self.gzip_all or any(real.startswith(d) for d in self.gzip_dirs)
                or any(real.endswith(e) for e in self.gzip_exts)
                or any(r.search(real) for r in self.gzip_regexps)):
            return real, ""
        for suffix, encoding in ((".br", "br"), (".gz", "gzip")):
            if encoding in accepted and os.path.exists(real + suffix):
                return real + suffix, encoding
        return real, ""

    def _mime_type(self, filename: str) -> str | None:
        """``uwsgi_get_mime_type``: the text after the last '.' (alphanumerics only)."""
        match = re.search(r"\.([A-Za-z0-9]*)$", filename)
        return self.mime.get(match.group(1)) if match else None


def _str_num(value: str) -> int:
    """``uwsgi_str_num``: each character's code minus '0' at its decimal place."""
    return sum((ord(c) - 48) * 10 ** (len(value) - 1 - i) for i, c in enumerate(value))


def _fix_range(parsed: int, start: int, end: int, size: int) -> tuple[int, int, int]:
    """``uwsgi_fix_range_for_size``: a parsed range against the file's size."""
    if parsed != _RANGE_PARSED:
        return parsed, start, end
    if start < 0:
        start += size
    end = min(end, size - 1)
    if start == 0 and end == size - 1:
        return _RANGE_NOT_PARSED, start, end  # the whole file: a plain 200
    if end >= start:
        return _RANGE_VALID, start, end
    return _RANGE_INVALID, 0, 0


def startup_lines(inst: Instance) -> tuple[list[str], list[str]]:
    """The static options' lines before uWSGI's banner, and the mime types' line."""
    from .reading import reading

    static = reading(inst).static
    if static is None:
        return [], []
    return static.option_lines(), static.mime_lines()
