"""uWSGI's YAML, JSON and XML configuration files, read as 2.0.30's pyuwsgi build reads
them (``uwsgi --cflags``: ``UWSGI_YAML`` without libyaml, ``UWSGI_JSON`` with jansson,
``UWSGI_XML_EXPAT``). Each reader turns a file's text (its ``%x`` magic already
replaced) into the ``(key, value)`` pairs uWSGI adds as options, in the file's order;
:mod:`simuwsgi.server.config` applies them as it applies an ``.ini`` file's.

* YAML (``core/yaml.c``, its own line reader, not a YAML parser): a line ``name:`` at
  some depth opens the section asked (``uwsgi``, or ``FILE:section``); the deeper lines
  after it are ``key: value`` (the value as written, quotes included); ``#`` ends a
  line anywhere (in a value too); the section ends at the first line no deeper than
  the last shallower one, a list item (``- x``), a ``[`` or ``{`` line, or a line with
  no ``": "``; ``key:`` alone there ends it too.
* JSON (``core/json.c``, jansson): the object named ``uwsgi`` (or ``FILE:name``) of the
  top-level object, its members in order: a string as is, ``true`` ``1``, ``false``
  and ``null`` ``0``, an integer as C's ``int`` prints it (truncated to 32 bits); an
  array adds one option per element by the same rules. jansson reals (``3.5``),
  objects and nested arrays add nothing (:data:`DROPPED` says so).
* XML (``core/xmlconf.c``, expat: the same library as Python's ``pyexpat``): every
  ``<uwsgi>`` element, at any depth (only those with ``id="ID"`` given ``FILE:ID``),
  each child element an option: its first piece of text (expat hands over text in
  pieces, an entity makes a new one: ``a &amp; b`` gives ``a``), or ``1`` when it has
  none; a nested element is an option of its own.

Errors are uWSGI's lines (the process exits 1); a JSON syntax error names Python's
``json`` reason where uWSGI prints jansson's.
"""

from __future__ import annotations

import json
from xml.parsers import expat

__all__ = ["DROPPED", "ConfigFileError", "json_options", "xml_options", "yaml_options"]

#: What the JSON reader says of a member jansson's reader skips (filled in by the key).
DROPPED = ("[simuwsgi] {file}: {key}: uWSGI 2.0.30 (jansson) ignores a JSON {kind} "
           "there; no option is added")


class ConfigFileError(Exception):
    """uWSGI logs this line and exits 1."""


# -- YAML ---------------------------------------------------------------------------------
def _depth(line: str) -> int:
    depth = 0
    for char in line:
        if char == " ":
            depth += 1
        elif char in "\t\r":
            depth += 8
        else:
            break
    return depth


def yaml_options(text: str, section: str = "uwsgi") -> list[tuple[str, str]]:
    """The options of ``section`` in a YAML file (``uwsgi_yaml_config``)."""
    found: list[tuple[str, str]] = []
    in_section = False
    current_depth = 0
    for line in text.split("\n"):
        line = line.split("#", 1)[0]
        if not line:
            continue
        depth = _depth(line)
        if depth <= current_depth:
            current_depth = depth
            if in_section:
                break
        elif not in_section:
            continue
        key = line.lstrip(" \t\r")
        if not key:
            continue
        if key[0] in "-[{":
            if in_section:
                break
            continue
        if not in_section:
            name, colon, _rest = key.partition(":")
            in_section = bool(colon) and name == section
            continue
        at = key.find(": ")
        if at < 0:
            at = key.find(":\t")
        if at < 0:
            break
        found.append((key[:at].rstrip(" \t"), key[at + 2:].lstrip(" \t\r").rstrip(" \t")))
    return found


# -- JSON ---------------------------------------------------------------------------------
def _int32(value: int) -> str:
    """``uwsgi_num2str(json_integer_value(v))``: the int C keeps of a json_int_t."""
    value &= 0xFFFFFFFF
    return str(value - (1 << 32) if value >= 1 << 31 else value)


def _scalar(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is True:
        return "1"
    if value is False or value is None:
        return "0"
    if isinstance(value, int):
        return _int32(value)
    return None


def _kind(value: object) -> str:
    if isinstance(value, float):
        return "real"
    return "object" if isinstance(value, dict) else "array"


def _no_constants(name: str) -> float:
    raise ValueError(f"invalid token near '{name}'")


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # jansson keeps a member's first place and its last value (json_object_set)
    return dict(pairs)


def json_options(text: str, name: str = "uwsgi"
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The options of the object ``name`` in a JSON file (``uwsgi_json_config``), and
    the ``(key, kind)`` of each member or element jansson's reader skips."""
    try:
        root = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constants)
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        reason = getattr(exc, "msg", str(exc))
        raise ConfigFileError(f"error parsing JSON data: line {line} {reason}") from None
    except RecursionError:  # jansson stops at a depth of 2048 with these words
        raise ConfigFileError("error parsing JSON data: line 1 maximum parsing depth "
                              "reached") from None
    if not isinstance(root, (dict, list)):
        raise ConfigFileError(f"error parsing JSON data: line 1 '[' or '{{' expected near "
                              f"{text.strip()[:20]!r}")
    config = root.get(name) if isinstance(root, dict) else None
    if not isinstance(config, dict):
        raise ConfigFileError(f"you must define a object named {name} in your JSON data")
    found: list[tuple[str, str]] = []
    dropped: list[tuple[str, str]] = []
    for key, value in config.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            text_value = _scalar(item)
            if text_value is None:
                dropped.append((key, _kind(item)))
            else:
                found.append((key, text_value))
    return found, dropped


# -- XML ----------------------------------------------------------------------------------
def xml_options(text: str, ident: str | None = None) -> list[tuple[str, str]]:
    """The options of the ``<uwsgi>`` elements of an XML file (``uwsgi_xml_config``,
    expat): all of them, or those with ``id="ident"``."""
    found: list[tuple[str, str]] = []
    state: dict[str, object] = {"stanza": False, "key": None}

    def start(name: str, attrs: list[str]) -> None:
        if not state["stanza"]:
            if ident is not None and (len(attrs) < 2 or attrs[0] != "id"
                                      or attrs[1] != ident):
                return
            if name == "uwsgi":
                state["stanza"] = True
        else:
            state["key"] = name

    def chars(data: str) -> None:
        if state["stanza"] and state["key"] is not None:
            found.append((str(state["key"]), data))
            state["key"] = None

    def end(name: str) -> None:
        if not state["stanza"]:
            return
        if name == "uwsgi":
            state["stanza"] = False
            return
        if state["key"] is not None:
            found.append((str(state["key"]), "1"))
            state["key"] = None

    parser = expat.ParserCreate()
    parser.ordered_attributes = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    data = text.encode("utf-8", "surrogateescape")
    try:
        # uWSGI feeds the whole file, never saying it is the last piece, and again
        # until expat finds junk after the root element (the file a second time)
        parser.Parse(data, False)
        parser.Parse(data, False)
    except expat.ExpatError as exc:
        if exc.code != expat.errors.codes[expat.errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]:
            raise ConfigFileError(f"unable to parse xml file: "
                                  f"{expat.ErrorString(exc.code)} (line {exc.lineno})"
                                  ) from None
    else:  # no root element closed: uWSGI would feed the file forever
        raise ConfigFileError("unable to parse xml file: the root element is never closed "
                              "(uWSGI 2.0.30 reads such a file forever)")
    return found
