"""uWSGI options: parsed from an argv list, a dict, or the user's ``.ini`` file.

What it models (uWSGI 2.0.30 ``core/uwsgi.c``, ``core/ini.c``):

* the option names of the real binary (``_uwsgi_options.OPTIONS``) with their short
  flags (``-p 4``, ``-M``) and ``--name=value`` forms; getopt's rules: a flag takes no
  value (``--master=1`` is refused), a required value may not be missing, an optional
  value must be attached with ``=`` (``--mule=file.py``);
* an unknown command-line option is refused with uWSGI's own words
  (``unrecognized option '--bogus'``); in an ``.ini`` file an unknown key is a
  *placeholder*, exactly as uWSGI treats it;
* repeated options keep every value in order (``--mule`` twice = two mules), while
  ``uwsgi.opt`` keeps only the last one, as a Python 3 build of uWSGI does;
* ``--set name=value`` (``-S``) sets an option when ``name`` is one, and always sets a
  placeholder; ``%(name)``, ``$(ENV)``, ``%d``/``%n``/``%c``/``%p``/``%s``/``%e``/
  ``%x`` (the config file's directory, name, ...) and ``%k`` (cpu count) are expanded;
* flag values ``false``/``off``/``no``/``0`` mean off, as ``uwsgi_opt_true`` reads them;
* ``--ini file.ini[:section]`` inside argv, and ``.ini`` paths given directly.

Options are kept as given; the simulator reads them through the typed accessors,
which resolve aliases (``workers`` = ``processes``, ``wsgi`` = ``module``, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._uwsgi_options import ALIASES, OPTIONS

__all__ = ["Options", "atoi", "parse_options", "parse_ini"]

_NO_ARG, _REQUIRED, _OPTIONAL = 0, 1, 2
_SHORT = {short: name for name, (_kind, short) in OPTIONS.items() if short}
# Where the short flag is shared (-s, -p, -w, -x), getopt maps it to the first name.
for _name, (_kind, _short) in reversed(list(OPTIONS.items())):
    if _short:
        _SHORT[_short] = _name
_FALSE_WORDS = {"false", "off", "no", "0"}


def canonical(name: str) -> str:
    """The name uWSGI's option table files this option's setting under."""
    return ALIASES.get(name, name)


@dataclass
class Options:
    """The options of one uWSGI instance, in the order given.

    ``items`` holds ``(name, value)`` pairs; ``value`` is a ``str``, or ``True`` for a
    flag given without a value.
    """

    items: list[tuple[str, str | bool]] = field(default_factory=list)
    placeholders: dict[str, str] = field(default_factory=dict)
    #: ``uwsgi.opt`` entries in the order uWSGI exports them (placeholders included).
    exports: list[tuple[str, str | bool]] = field(default_factory=list)
    #: What the user wrote, for rebuilding a command line (``--set``/``--ini`` kept).
    given: list[tuple[str, str | bool]] = field(default_factory=list)
    #: The directory relative paths (app file, spooler dirs) are resolved against.
    base_dir: Path = field(default_factory=Path.cwd)

    # -- reading ------------------------------------------------------------------
    def values(self, *names: str) -> list[str | bool]:
        """Every value given for any of ``names`` or their aliases, in order."""
        wanted = {canonical(n) for n in names}
        return [v for n, v in self.items if canonical(n) in wanted]

    def last(self, *names: str) -> str | bool | None:
        found = self.values(*names)
        return found[-1] if found else None

    def has(self, *names: str) -> bool:
        return bool(self.values(*names))

    def flag(self, *names: str) -> bool:
        """A flag option as ``uwsgi_opt_true`` reads it (last value wins)."""
        value = self.last(*names)
        if value is None:
            return False
        if value is True:
            return True
        return str(value).strip().lower() not in _FALSE_WORDS

    def int(self, name: str, default: int = 0) -> int:
        value = self.last(name)
        if value is None:
            return default
        if value is True:
            return 1
        return atoi(str(value))

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.last(name)
        if value is None or value is True:
            return default
        return str(value)

    def strings(self, *names: str) -> list[str]:
        return [v for v in self.values(*names) if isinstance(v, str)]

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    def exported(self) -> dict[str, bytes | bool]:
        """``uwsgi.opt``: str keys, bytes values or True, the last value of repeats."""
        out: dict[str, bytes | bool] = {}
        for name, value in self.exports:
            out[name] = True if value is True else str(value).encode()
        return out

    def argv(self) -> list[str]:
        """These options as a uWSGI command line (for real mode)."""
        return [f"--{name}" if value is True else f"--{name}={value}"
                for name, value in self.given]

    def add(self, name: str, value: str | bool) -> None:
        self.items.append((name, value))
        self.exports.append((name, value))


def atoi(text: str) -> int:
    """C ``atoi``: leading whitespace, optional sign, digits; anything else stops it.

    uWSGI reads most numbers this way (option values, signal and mule targets)."""
    if text.isdigit() and text.isascii():
        return int(text)
    m = _ATOI.match(text)
    return int(m.group(1)) if m else 0


_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")  # C isspace, ASCII digits


class _Expander:
    """uWSGI's placeholder and magic-variable expansion for option values."""

    def __init__(self, opts: Options, config_file: Path | None) -> None:
        self.opts = opts
        self.config_file = config_file

    def __call__(self, value: str) -> str:
        if "$(" in value:
            value = re.sub(r"\$\(([^)]*)\)", lambda m: os.environ.get(m.group(1), ""), value)
        if "%" not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            ch = value[i]
            if ch == "%" and i + 1 < len(value):
                nxt = value[i + 1]
                if nxt == "(":
                    end = value.find(")", i + 2)
                    if end != -1:
                        key = value[i + 2:end]
                        out.append(self.opts.placeholders.get(key, os.environ.get(key, "")))
                        i = end + 1
                        continue
                magic = self._magic(nxt)
                if magic is not None:
                    out.append(magic)
                    i += 2
                    continue
            out.append(ch)
            i += 1
        return "".join(out)

    def _magic(self, letter: str) -> str | None:
        f = self.config_file
        if letter == "%":
            return "%"
        if letter == "k":
            return str(os.cpu_count() or 1)
        if f is None:
            return None
        table = {
            "v": str(f.parent), "d": str(f.parent) + "/", "p": str(f), "s": f.name,
            "n": f.stem, "e": f.suffix.lstrip("."), "c": f.parent.name,
            "x": f.suffix.lstrip("."),
        }
        return table.get(letter)


def _apply(opts: Options, name: str, value: str | bool, expand: _Expander,
           from_file: bool, top: bool = True) -> None:
    if top and not from_file:
        opts.given.append((name, value))
    if isinstance(value, str) and from_file:
        # Only config files are expanded (uwsgi_open_and_read's magic_sub and the ini
        # parser): a command line's ``%(addr)`` stays literal (observed: --logformat).
        value = expand(value)
    if name in ("set", "set-placeholder", "set-ph") and isinstance(value, str):
        key, _, val = value.partition("=")
        opts.placeholders[key] = val
        opts.exports.append((name, value))
        if name == "set" and key in OPTIONS:
            _apply(opts, key, val, expand, from_file, top=False)
        else:
            opts.exports.append((key, val))
        return
    if name == "ini" and isinstance(value, str):
        _load_ini(opts, value)
        return
    if name not in OPTIONS:
        if from_file:
            # uWSGI: a key that is not an option is a placeholder.
            opts.placeholders[name] = str(value)
            return
        raise ConfigError(f"unrecognized option '--{name}'")
    opts.add(name, value)
    if isinstance(value, str):
        opts.placeholders.setdefault(name, value)


def parse_options(options: Any, *, base_dir: Path | None = None) -> Options:
    """Options from an argv list, a dict, an ``Options``, or an ``.ini`` path."""
    if isinstance(options, Options):
        return options
    opts = Options(base_dir=Path(base_dir) if base_dir else Path.cwd())
    if isinstance(options, (str, os.PathLike)):
        return parse_ini(options, opts)
    expand = _Expander(opts, None)
    if isinstance(options, Mapping):
        for name, value in options.items():
            name = str(name).lstrip("-")
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if v is False or v is None:
                    continue
                _check_value(name, v if v is True else str(v))
                _apply(opts, name, True if v is True else str(v), expand, from_file=False)
        return opts
    if isinstance(options, Iterable):
        for name, value in _iter_argv(list(options)):
            _apply(opts, name, value, expand, from_file=False)
        return opts
    raise TypeError(f"options must be an argv list, a dict or an .ini path, "
                    f"not {type(options).__name__}")


def _check_value(name: str, value: str | bool) -> None:
    if name not in OPTIONS:
        raise ConfigError(f"unrecognized option '--{name}'")
    kind = OPTIONS[name][0]
    if kind == _NO_ARG and value is not True and not isinstance(value, str):
        raise ConfigError(f"option '--{name}' doesn't allow an argument")
    if kind == _REQUIRED and value is True:
        raise ConfigError(f"option '--{name}' requires an argument")


def _iter_argv(argv: list[str]) -> Iterable[tuple[str, str | bool]]:
    """getopt_long over a uWSGI command line; yields (long name, value)."""
    i = 0
    while i < len(argv):
        arg = str(argv[i])
        i += 1
        if arg.startswith("--"):
            name, eq, attached = arg[2:].partition("=")
            if name not in OPTIONS:
                raise ConfigError(f"unrecognized option '--{name}'")
            kind = OPTIONS[name][0]
            if kind == _NO_ARG:
                if eq:
                    raise ConfigError(f"option '--{name}' doesn't allow an argument")
                yield name, True
            elif kind == _OPTIONAL:
                yield name, attached if eq else True
            elif eq:
                yield name, attached
            elif i < len(argv):
                yield name, str(argv[i])
                i += 1
            else:
                raise ConfigError(f"option '--{name}' requires an argument")
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                name = _SHORT.get(letter)
                if name is None:
                    raise ConfigError(f"invalid option -- '{letter}'")
                if OPTIONS[name][0] == _NO_ARG:
                    yield name, True
                    continue
                if letters:
                    yield name, letters
                elif i < len(argv):
                    yield name, str(argv[i])
                    i += 1
                else:
                    raise ConfigError(f"option requires an argument -- '{letter}'")
                letters = ""
        elif arg.endswith(".ini") or ".ini:" in arg:
            yield "ini", arg
        else:
            raise ConfigError(
                f"unexpected argument {arg!r}: simuwsgi takes uWSGI options "
                f"('--name value') or an .ini file")


def parse_ini(path: str | os.PathLike[str], opts: Options | None = None) -> Options:
    """Options from a uWSGI ``.ini`` file (``file.ini:section`` picks a section).

    Relative paths, the file's own included, are relative to the current directory
    (``opts.base_dir``), not to the file, as uWSGI resolves them; ``%d`` in a value is
    the file's directory.
    """
    if opts is None:
        opts = Options()
    _load_ini(opts, os.fspath(path))
    return opts


def _load_ini(opts: Options, spec: str) -> None:
    section = "uwsgi"
    file_part = spec
    if ".ini:" in spec:
        file_part, section = spec.rsplit(":", 1)
    p = Path(file_part)
    if not p.is_absolute():
        p = opts.base_dir / p
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"unable to load configuration from {file_part}: {exc.strerror}") from None
    expand = _Expander(opts, p.resolve())
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current != section:
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq:
            # uWSGI: a bare key in an ini file is a flag set to true.
            _apply(opts, key, True, expand, from_file=True)
            continue
        _apply(opts, key, value.strip(), expand, from_file=True)
    if not any(n == "ini" for n, _ in opts.given):
        opts.given.append(("ini", spec))
