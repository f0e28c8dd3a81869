"""The documentation site: it builds with MkDocs in strict mode (a warning is an error),
and its code runs.

* Python blocks that open with ``# file: NAME`` are written to a directory per page
  (with an empty ``spool/``), and pytest runs the page's ``test_*.py`` files there;
* ``console`` blocks are a ``$ simuwsgi explain ...`` command and its output: the command
  runs (from the repository root) and must print exactly that.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from simuwsgi.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]'")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()


PYTHON_PAGES = [p for p in PAGES if any(b.startswith("# file: ") for b in blocks(p, "python"))]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.stem for p in PYTHON_PAGES])
def test_the_code_of_a_page_runs(page: Path, tmp_path: Path) -> None:
    for body in blocks(page, "python"):
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            (tmp_path / first[len("# file: "):].strip()).write_text(rest)
    (tmp_path / "spool").mkdir()
    tests = sorted(p.name for p in tmp_path.glob("test_*.py"))
    assert tests, f"{page.name} has files but no tests"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *tests], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # every test function ran (a parametrized one, or explore_seeds, runs several times)
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed[1]) >= len(
        re.findall(r"^def test_", "".join(blocks(page, "python")), re.M)), done.stdout[-2000:]


CONSOLE = [(p, i, b) for p in PAGES for i, b in enumerate(blocks(p, "console"))]


@pytest.mark.parametrize("page, index, block", CONSOLE,
                         ids=[f"{p.stem}-{i}" for p, i, _b in CONSOLE])
def test_console_blocks_print_what_they_show(page: Path, index: int, block: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    command, _, expected = block.partition("\n")
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:2] == ["simuwsgi", "explain"], command
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(argv[1:]) == 0
    assert out.getvalue() == expected


def test_the_api_page_is_the_stubs() -> None:
    from simuwsgi._apidoc import UNCHECKED, generate

    def signatures(text: str) -> list[str]:
        # which tests call a function (and so whether it is unchecked) changes with them
        return [line.removesuffix(UNCHECKED) for line in text.splitlines()
                if not line.startswith("<br>called in")]

    page = (DOCS / "api.md").read_text()
    assert signatures(page) == signatures(generate()), "python -m simuwsgi._apidoc > docs/api.md"
    named = re.findall(r"`(tests/[^`]+\.py)`", page)
    assert named and all((ROOT / name).is_file() for name in named)
    assert "`cache_get(key: _Text, cache: str=..., /) -> bytes | None`" in page


def test_every_function_says_what_2_0_30_does_and_agrees_with_the_stub() -> None:
    """``uwsgi_semantics.md`` covers the stub, function for function, and where the API
    digest states a return value it is the stub's annotation."""
    import ast

    from simuwsgi._apidoc import STUB, semantics

    said = semantics()
    annotations: dict[str, set[str]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            annotations.setdefault(node.name, set()).add(ast.unparse(node.returns))
    assert sorted(said) == sorted(annotations)

    def kinds(text: str) -> str:
        for alias, meaning in (("_TrueOrNone", "True | None"), ("Literal[True]", "True"),
                               ("Literal[b'']", "b''"), ("bool", "True | False")):
            text = text.replace(alias, meaning)
        return re.sub(r"\[[^]]*\]", "", text)  # list[bytes] and list are both a list

    checked = {name: e.returns for name, e in said.items() if e.returns is not None}
    assert len(checked) >= 40
    for name, returns in checked.items():
        assert {kinds(a) for a in annotations[name]} == {kinds(returns)}, name
    assert "Expired items are still returned" in said["cache_get"].real
    assert "NotSimulatedError" in said["connect"].simulated
