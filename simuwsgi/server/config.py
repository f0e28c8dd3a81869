"""uWSGI options: parsed from an argv list, a dict, or the user's configuration file
(``.ini``, or YAML, JSON and XML: :mod:`simuwsgi.server.configfiles`).

What it models (uWSGI 2.0.30 ``core/uwsgi.c``, ``core/ini.c``):

* the option names of the real binary (``_uwsgi_options.OPTIONS``) with their short
  flags (``-p 4``, ``-M``) and ``--name=value`` forms; getopt's rules: a flag takes no
  value (``--master=1`` is refused), a required value may not be missing, an optional
  value must be attached with ``=`` (``--mule=file.py``);
* an unknown command-line option is refused with uWSGI's own words
  (``unrecognized option '--bogus'``); in an ``.ini`` file an unknown key is a
  *placeholder*, exactly as uWSGI treats it (refused after ``--strict``);
* repeated options keep every value in order (``--mule`` twice = two mules), while
  ``uwsgi.opt`` keeps only the last one, as a Python 3 build of uWSGI does;
* ``--set name=value`` (``-S``) sets an option when ``name`` is one, and always sets a
  placeholder; ``%(name)``, ``$(ENV)``, ``%d``/``%n``/``%c``/``%p``/``%s``/``%e``/
  ``%x`` (the config file's directory, name, ...) and ``%k`` (cpu count) are expanded;
* flag values ``false``/``off``/``no``/``0`` mean off, as ``uwsgi_opt_true`` reads them;
* a negative value of an integer option (``--processes -5``) is refused as
  ``uwsgi_opt_set_int`` refuses it (exit status 1);
* ``--ini file.ini[:section]`` inside argv, and ``.ini`` paths given directly;
  ``:section`` alone is another section of the last file read; ``--yaml``/``--yml``,
  ``--json``/``--js`` and ``--xml``/``--xmlconfig`` ``FILE[:section]`` the same way, and
  a file given directly, or to ``include``/``inherit``, is read by its name's ending
  (``uwsgi_opt_load``: ``.ini``, ``.xml``, ``.yaml``, ``.yml``, ``.json``, ``.js``;
  another is ``unable to load configuration from FILE``);
* the option logic of ``core/config.c``: ``if-env``/``if-opt``/``if-exists``/...
  (``NAME=VALUE`` forms, ``if-not-*``) and ``for``/``for-times``/``for-readline``/
  ``for-glob`` blocks up to ``endif``/``endfor``, ``%(_)`` substituted, a nested block
  refused (2.0.30 has no ``else``: it is a placeholder); ``include`` reads a file where
  it appears, ``inherit`` once every option is read; ``exit`` refuses to start;
* the expansion passes uWSGI runs once every option is read: ``$(ENV)``, ``@(file)``
  and ``%(placeholder)`` (the first value given; ``%(a b + 1)`` concatenates and
  computes), an unresolved one left as written; ``%d``/``%n``/... are replaced as a
  file is read.

Options are kept as given; the simulator reads them through the typed accessors,
which resolve aliases (``workers`` = ``processes``, ``wsgi`` = ``module``, ...).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError, StartRefusedError
from ._uwsgi_options import ALIASES, INT_OPTIONS, OPTIONS, SSL_INT_OPTIONS, SSL_OPTIONS
from .configfiles import DROPPED, ConfigFileError, json_options, xml_options, yaml_options

__all__ = ["CONFIG_READERS", "Options", "atoi", "config_reader", "parse_file", "parse_ini", "parse_options"]

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


class _Answers:
    """What the typed accessors answered for one ``items`` list: ``values``, ``flag``
    and ``int`` by their arguments, and what ``memo`` computed by its key."""

    __slots__ = ("items", "length", "values", "flag", "int", "memo")

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, items: Any) -> None:
        self.items = items
        self.length = -1 if items is None else len(items)
        self.values: dict[tuple[str, ...], list[str | bool]] = {}
        self.flag: dict[tuple[str, ...], bool] = {}
        self.int: dict[tuple[str, int], int] = {}
        self.memo: dict[Any, Any] = {}


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
    #: While reading: the open ``if-*``/``for`` block (name, argument), the
    #: ``inherit`` files still to read, the last ini file read (for ``:section``).
    logic: tuple[str, str] | None = None
    inherit: list[str] = field(default_factory=list)
    last_file: Path | None = None
    #: Lines uWSGI logs while it reads its options (logged when the instance starts).
    parse_log: list[str] = field(default_factory=list)
    #: The option table of the build: the pyuwsgi wheel's, or with ``ssl=True`` also the
    #: SSL build's (``--legion``...).
    known: Mapping[str, tuple[int, str]] = field(default_factory=lambda: OPTIONS, repr=False,
                                                  compare=False)
    #: Remembered answers (``_Answers``), valid while ``items`` is the list they were
    #: computed from, with as many items (every change appends or replaces the list).
    _seen: _Answers = field(default_factory=lambda: _Answers(), repr=False, compare=False)

    # -- reading ------------------------------------------------------------------
    def _fresh(self) -> _Answers:
        """The remembered answers, forgotten first if ``items`` changed."""
        seen = self._seen
        items = self.items
        if items is not seen.items or len(items) != seen.length:
            seen.reset(items)
        return seen

    def values(self, *names: str) -> list[str | bool]:
        """Every value given for any of ``names`` or their aliases, in order (a list
        the caller must not change). Remembered while ``items`` stays as it is: the
        request path reads a dozen options per request."""
        answers = self._fresh().values
        found = answers.get(names)
        if found is None:
            wanted = {canonical(n) for n in names}
            found = answers[names] = [v for n, v in self.items if canonical(n) in wanted]
        return found  # type: ignore[no-any-return]

    def memo(self, key: Any, compute: Any, *args: Any) -> Any:
        """``compute(*args)``, remembered under ``key`` while the options stay as they
        are: what the request path derives from them is computed once."""
        answers = self._fresh().memo
        if key not in answers:
            answers[key] = compute(*args)
        return answers[key]

    def last(self, *names: str) -> str | bool | None:
        found = self.values(*names)
        return found[-1] if found else None

    def has(self, *names: str) -> bool:
        return bool(self.values(*names))

    def flag(self, *names: str) -> bool:
        """A flag option as ``uwsgi_opt_true`` reads it (last value wins)."""
        answers = self._fresh().flag
        answer = answers.get(names)
        if answer is None:
            value = self.last(*names)
            answer = answers[names] = (
                value is True or (value is not None
                                  and str(value).strip().lower() not in _FALSE_WORDS))
        return answer  # type: ignore[no-any-return]

    def int(self, name: str, default: int = 0) -> int:
        answers = self._fresh().int
        key = (name, default)
        answer = answers.get(key)
        if answer is None:
            value = self.last(name)
            answer = answers[key] = (default if value is None else 1 if value is True
                                     else atoi(str(value)))
        return answer  # type: ignore[no-any-return]

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
        """``uwsgi.opt``: str keys, bytes values or True, the last value of repeats; a
        value's bytes are those of the command line (``os.fsencode``: not UTF-8 too)."""
        out: dict[str, bytes | bool] = {}
        for name, value in self.exports:
            out[name] = True if value is True else os.fsencode(str(value))
        return out

    def argv(self) -> list[str]:
        """These options as a uWSGI command line (for real mode)."""
        return [f"--{name}" if value is True else f"--{name}={value}"
                for name, value in self.given]

    def add(self, name: str, value: str | bool) -> None:
        self.items.append((name, value))
        self.exports.append((name, value))
        if isinstance(value, str):
            self.placeholders.setdefault(name, value)


def atoi(text: str) -> int:
    """C ``atoi``: leading whitespace, optional sign, digits; anything else stops it.

    uWSGI reads most numbers this way (option values, signal and mule targets)."""
    if text.isdigit() and text.isascii():
        return int(text)
    m = _ATOI.match(text)
    return int(m.group(1)) if m else 0


_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")  # C isspace, ASCII digits


_LOGIC = frozenset({
    "if-env", "if-not-env", "if-opt", "if-not-opt", "if-exists", "if-not-exists",
    "if-file", "if-not-file", "if-dir", "if-not-dir", "if-reload", "if-not-reload",
    "if-plugin", "if-not-plugin", "for", "for-times", "for-readline", "for-glob"})
_LOGIC_END = frozenset({"end", "endif", "end-if", "endfor", "end-for"})


def _magic(text: str, config_file: Path) -> str:
    """``magic_sub``: the ``%x`` letters of a config file, replaced as it is read."""
    f = config_file
    table = {
        "%": "%", "(": "%(", "k": str(os.cpu_count() or 1),
        "v": str(f.parent), "d": str(f.parent) + "/", "p": str(f), "s": f.name,
        "n": f.stem, "e": f.suffix.lstrip("."), "c": f.parent.name,
        "x": f.suffix.lstrip("."),
    }
    return re.sub(r"%(.)", lambda m: table.get(m.group(1), m.group(0)), text)


def _exported(opts: Options, key: str) -> str | None:
    """``uwsgi_get_exported_opt``: the first value given for ``key``."""
    for name, value in opts.exports:
        if name == key:
            return "" if value is True else str(value)
    return None


def _placeholder(opts: Options, key: str) -> str | None:
    """``uwsgi_manage_placeholder``: ``%(name)``, or ``%(a b + 2)`` concatenation and
    integer arithmetic over placeholders and numbers."""
    if " " not in key:
        return _exported(opts, key)
    current: str | None = None
    op = ""
    for token in key.split():
        if token in ("+", "-", "*", "/"):
            op = token
            continue
        if token in ("++", "--"):
            if current is not None:
                current = str(_strtoll(current) + (1 if token == "++" else -1))
            op = ""
            continue
        value = token if token.isdigit() else (_exported(opts, token) or "")
        a, b = _strtoll(current or ""), _strtoll(value)
        if op == "+":
            current = str(a + b)
        elif op == "-":
            current = str(a - b)
        elif op == "*":
            current = str(a * b)
        elif op == "/":
            current = str(int(a / b) if b else 0)
        else:
            current = (current or "") + value
        op = ""
    return current


def _strtoll(text: str) -> int:
    return atoi(text)


def _at_file(opts: Options, name: str) -> str:
    """``@(file)``: the file's content without its last newline."""
    path = opts.path(name)
    try:
        data = os.fsdecode(path.read_bytes())
    except OSError as exc:
        raise StartRefusedError(f'open("{name}"): {exc.strerror} [core/io.c line 525]') from None
    return data[:-1] if data.endswith(("\n", "\r")) else data


def _config_pass(value: str, symbol: str, hook: Any) -> str:
    """``uwsgi_apply_config_pass``: replace each ``<symbol>(key)`` the hook resolves
    (nested parentheses kept in the key); an unresolved one stays as written."""
    opening = symbol + "("
    start = 0
    while True:
        i = value.find(opening, start)
        if i == -1:
            return value
        depth, j = 0, i + 2
        while j < len(value):
            if value[j] == "(":
                depth += 1
            elif value[j] == ")":
                if depth == 0:
                    break
                depth -= 1
            j += 1
        if j >= len(value) or j == i + 2:
            return value
        resolved = hook(value[i + 2:j])
        if resolved is None:
            start = j + 1
            continue
        value = value[:i] + resolved + value[j + 1:]
        start = 0


def _expand(opts: Options, value: str) -> str:
    """The three passes uWSGI runs once every option is read: ``$(ENV)``,
    ``@(file)``, ``%(placeholder)``."""
    if "(" not in value:
        return value
    value = _config_pass(value, "$", os.environ.get)
    value = _config_pass(value, "@", lambda name: _at_file(opts, name))
    return _config_pass(value, "%", lambda key: _placeholder(opts, key))


def _logic_values(opts: Options, value: str | bool) -> list[str | bool]:
    """What one line inside an ``if-*``/``for`` block adds (``%(_)`` substituted)."""
    kind, arg = opts.logic  # type: ignore[misc]

    def sub(data: str) -> str | bool:
        return value.replace("%(_)", data) if isinstance(value, str) else value

    if kind in ("for", "for-times", "for-readline", "for-glob"):
        if kind == "for":
            items = arg.split()
        elif kind == "for-times":
            items = [str(i) for i in range(1, atoi(arg) + 1)]
        elif kind == "for-readline":
            try:
                items = os.fsdecode(opts.path(arg).read_bytes()).splitlines()
            except OSError as exc:  # uwsgi_error_open: logged, the block adds nothing
                opts.parse_log.append(f'open("{arg}"): {exc.strerror} [core/config.c line 96]')
                items = []
        else:
            found = sorted(glob.glob(str(opts.path(arg))))
            items = [p + "/" if os.path.isdir(p) else p for p in found] or [arg]
        return [sub(item) for item in items]
    negate = kind.startswith("if-not-")
    test = kind.replace("if-not-", "if-")
    data: str | None = arg
    if test in ("if-env", "if-opt"):
        key, eq, wanted = arg.partition("=")
        data = os.environ.get(key) if test == "if-env" else _exported(opts, key)
        true = data is not None and (not eq or data == wanted)
    elif test == "if-reload":
        true = False  # the options are read before any reload
    elif test == "if-plugin":
        true = False  # pyuwsgi has no plugin under any name
    else:
        path = opts.path(arg)
        true = {"if-exists": path.exists, "if-file": path.is_file, "if-dir": path.is_dir}[test]()
    if true == negate:
        return []
    return [sub(data if data is not None else "")]


class _Literal(str):
    """A value from the command line: never placeholder-expanded. Only config files are
    (uwsgi_open_and_read's magic_sub and the ini parser): a command line's ``%(addr)``
    stays literal (observed on 2.0.30 with --logformat)."""


def _apply(opts: Options, name: str, value: str | bool, from_file: bool,
           top: bool = True, in_logic: bool = False) -> None:
    if top and not from_file:
        opts.given.append((name, value))
        if isinstance(value, str):
            value = _Literal(value)
    # core/config.c add_exported_option_do: the end of a block, then the block's
    # condition or loop, then the immediate options
    if name in _LOGIC_END:
        opts.logic = None
        opts.exports.append((name, value))
        return
    if opts.logic is not None and not in_logic:
        for each in _logic_values(opts, value):
            _apply(opts, name, each, from_file, top=False, in_logic=True)
        return
    if canonical(name) in _LOGIC:
        if opts.logic is not None:
            raise StartRefusedError(
                f"recursive logic in options is not supported (option = {name})")
        opts.logic = (canonical(name), value if isinstance(value, str) else "")
        opts.exports.append((name, value))
        return
    if name == "exit":
        code = atoi(value) if isinstance(value, str) else 1
        raise StartRefusedError(f"--exit in the options: uWSGI exits with status {code}",
                                status=code)
    if name in ("set", "set-placeholder", "set-ph") and isinstance(value, str):
        key, eq, val = value.partition("=")
        if not eq:
            raise StartRefusedError("invalid placeholder/--set value")
        opts.placeholders[key] = val
        opts.exports.append((name, value))
        if name == "set" and key in opts.known:
            _apply(opts, key, val, from_file, top=False, in_logic=True)
        else:
            opts.exports.append((key, val))
        return
    if name in ("include", "inherit") and isinstance(value, str) \
            and config_reader(value) is None:
        raise StartRefusedError(f"unable to load configuration from {value}")
    if name in _READERS and isinstance(value, str):
        shown = value
        if _READERS[name] is _load_xml and ":" in value:
            # uwsgi_xml_config puts its ':' back one character late: the option's value
            # ends at the file's name (observed: uwsgi.opt['xml'] is b'conf.xml')
            shown = value.rpartition(":")[0]
        opts.exports.append((name, shown))
        _READERS[name](opts, value)
        return
    if name == "include" and isinstance(value, str):
        opts.exports.append((name, value))
        _load_file(opts, value)
        return
    if name == "inherit" and isinstance(value, str):
        opts.exports.append((name, value))
        opts.inherit.append(value)  # loaded once every option is read (uwsgi_configure)
        return
    if name not in opts.known:
        if from_file:
            # uWSGI: a key that is not an option is a placeholder, unless --strict
            # came first (core/config.c uwsgi_opt_get).
            if opts.flag("strict"):
                raise StartRefusedError(f"[strict-mode] unknown config directive: {name}")
            opts.placeholders[name] = str(value)
            opts.exports.append((name, value))
            return
        raise ConfigError(f"unrecognized option '--{name}'")
    opts.add(name, value)


def _finish(opts: Options) -> Options:
    """After reading: the expansion passes, the checks uWSGI makes as it applies the
    options, then ``inherit`` files (read last, and not expanded)."""
    opts.exports = [(n, _finished(opts, v)) for n, v in opts.exports]
    opts.items = [(n, _finished(opts, v)) for n, v in opts.items]
    for name, value in opts.items:
        if (name in INT_OPTIONS or name in SSL_INT_OPTIONS) and isinstance(value, str) \
                and atoi(value) < 0:
            # uwsgi_opt_set_int: uWSGI exits while it applies the option
            raise StartRefusedError(f'invalid value for option "{name}": must be > 0')
    while opts.inherit:
        _load_file(opts, opts.inherit.pop(0))
    return opts


def _finished(opts: Options, value: str | bool) -> str | bool:
    if isinstance(value, _Literal):
        return str(value)
    return _expand(opts, value) if isinstance(value, str) else value


def parse_options(options: Any, *, base_dir: Path | None = None, ssl: bool = False) -> Options:
    """Options from an argv list, a dict, an ``Options``, or a configuration file's path
    (``.ini``, ``.yaml``/``.yml``, ``.json``/``.js``, ``.xml``); with
    ``ssl`` those of a build with SSL are known too (``--legion``...)."""
    if isinstance(options, Options):
        return options
    opts = Options(base_dir=Path(base_dir) if base_dir else Path.cwd(),
                   known={**OPTIONS, **SSL_OPTIONS} if ssl else OPTIONS)
    if isinstance(options, (str, os.PathLike)):
        return parse_file(options, opts)
    if isinstance(options, Mapping):
        for name, value in options.items():
            name = str(name).lstrip("-")
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if v is False or v is None:
                    continue
                _check_value(opts.known, name, v if v is True else str(v))
                _apply(opts, name, True if v is True else str(v), from_file=False)
        return _finish(opts)
    if isinstance(options, Iterable):
        files = []
        for name, value in _iter_argv(list(options), opts.known):
            if name == _FILE:
                files.append(str(value))
            else:
                _apply(opts, name, value, from_file=False)
        for spec in files:  # after every option, as getopt leaves them (uwsgi_opt_load:
            # read by the name's ending, no option exported: uwsgi.opt does not show it)
            reader = config_reader(spec) or "ini"
            opts.given.append((reader, spec))
            _READERS[reader](opts, spec)
        return _finish(opts)
    raise TypeError(f"options must be an argv list, a dict or a configuration file's path, "
                    f"not {type(options).__name__}")


def _check_value(known: Mapping[str, tuple[int, str]], name: str, value: str | bool) -> None:
    if name not in known:
        raise ConfigError(f"unrecognized option '--{name}'")
    kind = known[name][0]
    if kind == _NO_ARG and value is not True and not isinstance(value, str):
        raise ConfigError(f"option '--{name}' doesn't allow an argument")
    if kind == _REQUIRED and value is True:
        raise ConfigError(f"option '--{name}' requires an argument")


def _iter_argv(argv: list[str],
               known: Mapping[str, tuple[int, str]]) -> Iterable[tuple[str, str | bool]]:
    """getopt_long over a uWSGI command line; yields (long name, value)."""
    i = 0
    while i < len(argv):
        arg = str(argv[i])
        i += 1
        if arg.startswith("--"):
            name, eq, attached = arg[2:].partition("=")
            if name not in known:
                raise ConfigError(f"unrecognized option '--{name}'")
            kind = known[name][0]
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
        elif arg.endswith(".ini") or ".ini:" in arg or config_reader(arg) is not None:
            yield _FILE, arg
        else:
            raise ConfigError(f"unable to load configuration from {arg} (simuwsgi takes "
                              "uWSGI options ('--name value') or a configuration file: "
                              ".ini, .yaml, .yml, .json, .js, .xml)")


def parse_file(path: str | os.PathLike[str], opts: Options | None = None) -> Options:
    """Options from a configuration file, read by its name's ending (an ``.ini`` file
    otherwise, with ``:section`` after the name)."""
    spec = os.fspath(path)
    reader = config_reader(spec)
    if reader is None or reader == "ini":
        return parse_ini(spec, opts)
    if opts is None:
        opts = Options()
    opts.exports.append((reader, spec))
    _READERS[reader](opts, spec)
    return _finish(opts)


def config_reader(spec: str) -> str | None:
    """``uwsgi_opt_load``: the option whose reader takes a file by its name's ending."""
    for ending, reader in _ENDINGS:
        if spec.endswith(ending):
            return reader
    return None


def parse_ini(path: str | os.PathLike[str], opts: Options | None = None) -> Options:
    """Options from a uWSGI ``.ini`` file (``file.ini:section`` picks a section).

    Relative paths, the file's own included, are relative to the current directory
    (``opts.base_dir``), not to the file, as uWSGI resolves them; ``%d`` in a value is
    the file's directory.
    """
    spec = os.fspath(path)
    if opts is None:
        opts = Options()
    opts.exports.append(("ini", spec))  # as ``uwsgi --ini FILE`` exports it
    _load_ini(opts, spec)
    return _finish(opts)


def _load_ini(opts: Options, spec: str) -> None:
    section = "uwsgi"
    file_part = spec
    if ".ini:" in spec or spec.startswith(":"):
        file_part, section = spec.rsplit(":", 1)
    if not file_part and opts.last_file is not None:
        p = opts.last_file  # ":section": another section of the last file read
    else:
        p = Path(file_part)
        if not p.is_absolute():
            p = opts.base_dir / p
    try:
        text = os.fsdecode(p.read_bytes())  # the bytes as written (not only UTF-8)
    except OSError as exc:
        raise ConfigError(f"unable to load configuration from {file_part}: {exc.strerror}") from None
    opts.last_file = p
    text = _magic(text, p.resolve())
    current = None
    found = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current != section:
            continue
        found = True
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq:
            # uWSGI: a bare key in an ini file is a flag set to true.
            _apply(opts, key, True, from_file=True)
            continue
        _apply(opts, key, value.strip(), from_file=True)
    if not found:
        opts.parse_log.append(f'*** WARNING: Can\'t find section "{section}" in INI '
                              f"configuration file {file_part or p} ***")
    if not any(n == "ini" for n, _ in opts.given):
        opts.given.append(("ini", spec))


def _read_config(opts: Options, spec: str) -> tuple[str, str | None, Path]:
    """A YAML, JSON or XML file named by ``spec`` (``FILE[:section]``, split at the last
    colon as uWSGI splits it): its text with the ``%x`` magic replaced, the section
    asked (None: none), the path."""
    file_part, colon, section = spec.rpartition(":")
    if not colon:
        file_part, section = spec, ""
    p = Path(file_part)
    if not p.is_absolute():
        p = opts.base_dir / p
    try:
        text = os.fsdecode(p.read_bytes())
    except OSError as exc:
        raise ConfigError(f"unable to load configuration from {file_part}: {exc.strerror}") from None
    opts.last_file = p
    return _magic(text, p.resolve()), section or None, p


def _apply_file(opts: Options, pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        _apply(opts, key, value, from_file=True)


def _load_yaml(opts: Options, spec: str) -> None:
    text, section, _p = _read_config(opts, spec)
    _apply_file(opts, yaml_options(text, section or "uwsgi"))


def _load_json(opts: Options, spec: str) -> None:
    text, section, p = _read_config(opts, spec)
    try:
        pairs, dropped = json_options(text, section or "uwsgi")
    except ConfigFileError as exc:
        raise StartRefusedError(str(exc)) from None
    for key, kind in dropped:
        opts.parse_log.append(DROPPED.format(file=p.name, key=key, kind=kind))
    _apply_file(opts, pairs)


def _load_xml(opts: Options, spec: str) -> None:
    text, ident, _p = _read_config(opts, spec)
    if spec.endswith(":"):  # uwsgi_xml_config: an empty id
        raise StartRefusedError("invalid xml id")
    try:
        pairs = xml_options(text, ident)
    except ConfigFileError as exc:
        raise StartRefusedError(str(exc)) from None
    _apply_file(opts, pairs)


def _load_file(opts: Options, spec: str) -> None:
    """``uwsgi_opt_load``: a file read by its name's ending (``include``, ``inherit``)."""
    reader = config_reader(spec)
    if reader is None:  # (a FILE:section name too: it does not end as a file's)
        raise StartRefusedError(f"unable to load configuration from {spec}")
    _READERS[reader](opts, spec)


#: What :func:`_iter_argv` yields for a configuration file given directly.
_FILE = "<file>"
#: The readers of the configuration options, and the name endings that choose them.
_READERS = {"ini": _load_ini, "yaml": _load_yaml, "yml": _load_yaml, "json": _load_json,
            "js": _load_json, "xml": _load_xml, "xmlconfig": _load_xml}
#: The options that read a configuration file.
CONFIG_READERS = frozenset(_READERS)
_ENDINGS = ((".ini", "ini"), (".xml", "xml"), (".yaml", "yaml"), (".yml", "yaml"),
            (".json", "json"), (".js", "json"))


#: The options that make the master the log's writer (``UWSGI_OPT_LOG_MASTER``), and a
#: request logger's (``UWSGI_OPT_REQ_LOG_MASTER``), in 2.0.30's ``core/uwsgi.c``.
LOG_MASTER_OPTIONS = ("log-master", "logger", "threaded-logger", "log-syslog", "log-socket",
                      "log-encoder", "log-req-encoder", "log-drain", "log-filter",
                      "log-route", "log-alarm", "alarm-log", "not-log-alarm",
                      "not-alarm-log", "touch-logrotate", "touch-logreopen")
REQ_LOG_MASTER_OPTIONS = ("req-logger", "logger-req", "log-req-route")


def socket_fds(opts: Options) -> list[int]:
    """The file descriptors of the instance's sockets, as uWSGI numbers them: 3, 4, ...
    one per socket option, in order (``uwsgi.sockets``, ``--map-socket``). The master's
    log pipes come first when it writes the log (6, 7, ...; 8, 9, ... with a request
    logger's too: observed on 2.0.30)."""
    count = len(opts.values("socket", "http-socket", "uwsgi-socket", "http11-socket",
                            "fastcgi-socket", "scgi-socket", "raw-socket",
                            "puwsgi-socket", "shared-socket"))
    given = {name for name, _value in opts.items}
    first = 3
    if given.intersection(REQ_LOG_MASTER_OPTIONS):
        first += 5
    elif given.intersection(LOG_MASTER_OPTIONS):
        first += 3
    return list(range(first, first + count))
