"""The ``uwsgi`` API reference page (``docs/api.md``), generated from the stub.

``simuwsgi/stubs/uwsgi.pyi`` is the one description of the 2.0.30 module: its sections
(``# -- name --`` comments), signatures and ``#`` comments become the page, and each
function lists the test files that call it (``uwsgi.NAME`` in ``tests/``): where what
it does is checked, against the real server for the differential ones. Next to it,
``simuwsgi/stubs/uwsgi_semantics.md`` says per function what 2.0.30 really does (from
the project's API digest of uWSGI's source and the real server) and how simuwsgi
differs, if it does: ``semantics()`` reads it, and the page shows both.

    python -m simuwsgi._apidoc > docs/api.md

``tests/test_docs.py`` fails when the page and the stub disagree, or when the page
names a test file that is gone (new tests calling a function are not a failure: run
the command again to list them).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "stubs" / "uwsgi.pyi"
SEMANTICS = STUB.with_name("uwsgi_semantics.md")
_SECTION = re.compile(r"^# -- (.+?) -+$")
#: After what simuwsgi does, for a function no test calls.
UNCHECKED = " No test calls it yet: that is unchecked."


class Semantics(NamedTuple):
    """One function's entry of ``uwsgi_semantics.md``."""

    spec: str  # the section of the API digest it comes from
    returns: str | None  # what the digest says a call returns
    real: str  # what 2.0.30 does
    simulated: str  # how simuwsgi differs ("as 2.0.30." when it does not)


def semantics(path: Path = SEMANTICS) -> dict[str, Semantics]:
    """Each function's entry, by name (one ``## a, b`` heading may name several)."""
    entries: dict[str, Semantics] = {}
    for block in path.read_text().split("\n## ")[1:]:
        head, meta, rest = block.split("\n", 2)
        real, _, simulated = rest.strip().partition("\n\nsimuwsgi: ")
        if not real.startswith("2.0.30: ") or not simulated:
            raise ValueError(f"{path.name}: the entry of {head} needs a '2.0.30: ' and a "
                             f"'simuwsgi: ' paragraph")
        spec, _, returns = meta.partition("; returns: ")
        entry = Semantics(spec.removeprefix("spec: "), returns or None,
                          real.removeprefix("2.0.30: "), simulated.strip())
        for name in head.split(", "):
            if name in entries:
                raise ValueError(f"{path.name}: {name} has two entries")
            entries[name] = entry
    return entries


def _comments_before(lines: list[str], lineno: int) -> list[str]:
    """The ``#`` comment lines right above line ``lineno`` (1-based), section rules
    excluded."""
    out: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].startswith("#") and not _SECTION.match(lines[i]):
        out.insert(0, lines[i].lstrip("#:").strip())
        i -= 1
    return out


def _signature(node: ast.FunctionDef) -> str:
    text = ast.unparse(node.args)
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{node.name}({text}){returns}"


def _tests_calling(name: str, tests: dict[str, str]) -> list[str]:
    pattern = re.compile(rf"\buwsgi\.{re.escape(name)}\(")
    return sorted(path for path, text in tests.items() if pattern.search(text))


def generate(root: Path = ROOT) -> str:
    source = STUB.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    tests = {p.relative_to(root).as_posix(): p.read_text(errors="replace")
             for p in sorted((root / "tests").rglob("*.py"))}
    sections: dict[int, str] = {i + 1: m.group(1) for i, line in enumerate(lines)
                                if (m := _SECTION.match(line))}
    said = semantics()
    out = ["# The `uwsgi` module", "",
           ("Generated from `simuwsgi/stubs/uwsgi.pyi` and `uwsgi_semantics.md` by "
            "`python -m simuwsgi._apidoc`: every function of uWSGI 2.0.30's `uwsgi` module as "
            "the simulator provides it, what the real 2.0.30 function does (§ numbers are the "
            "sections of the project's API digest, written from uWSGI's source and checked "
            "against the real server), how simuwsgi differs, and the test files that call it "
            "(the differential ones check it against the real server)."), "",
           ("In the **2.0.30** paragraphs, codes such as `s#|s` are the function's "
            "`PyArg_ParseTuple` format (the conventions below), \"obs.\" marks what was "
            "observed on the real server, and PM, PP, CACHE, MET, MULE, Q and UT are uWSGI's "
            "`plugins/python/uwsgi_pymodule.c`, `plugins/python/python_plugin.c`, "
            "`core/cache.c`, `core/metrics.c`, `core/mule.c`, `core/queue.c` and "
            "`core/utils.c`."), "",
           ast.get_docstring(tree) or "", ""]
    seen: set[str] = set()
    section_lines = sorted(sections)
    current = None
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        above = [n for n in section_lines if n < node.lineno]
        if above and sections[above[-1]] != current:
            current = sections[above[-1]]
            out += [f"## {current[0].upper()}{current[1:]}", ""]
        overload = any(ast.unparse(d) == "overload" for d in node.decorator_list)
        out.append(f"`{_signature(node)}`" + (" (overload)" if overload else ""))
        notes = _comments_before(lines, node.lineno - len(node.decorator_list))
        if notes:
            out.append(": " + " ".join(notes))
        if node.name not in seen:
            seen.add(node.name)
            proofs = _tests_calling(node.name, tests)
            if proofs:
                out.append(f"<br>called in {', '.join(f'`{p}`' for p in proofs[:6])}"
                           + (f" and {len(proofs) - 6} more" if len(proofs) > 6 else ""))
            entry = said[node.name]
            unchecked = "" if proofs else UNCHECKED
            out += ["", f"**2.0.30** ({entry.spec}): {entry.real}", "",
                    f"**simuwsgi:** {entry.simulated}{unchecked}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate())
