"""CPython's ``PyArg_ParseTuple``, as uWSGI's C functions use it, for the facade.

Every function of the real ``uwsgi`` module parses its arguments with a format string
such as ``"s#|ls:cache_set"``; the types it accepts, the values it converts (``B``
masks to 0..255, ``I`` to 32 bits) and the exact ``TypeError``/``OverflowError``
messages all come from that. ``parser(fmt)`` compiles a format into a fast Python
checker for the accepted cases. When an argument is refused, the same arguments are
handed to CPython's own ``_PyArg_ParseTuple_SizeT`` through ``ctypes`` purely to raise
the identical exception — so error messages are CPython's by construction.

Converted values: ``s`` → ``str``; ``s#`` → ``bytes`` (``str`` is UTF-8 encoded);
integer codes → ``int`` (masked where C masks); ``f`` → ``float``; ``O`` → the object.
"""

from __future__ import annotations

import ctypes
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["kwargs_dict_passed", "no_kwargs", "parser"]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class _Refused(Exception):
    pass


def _c_raise(fmt: str, args: tuple[Any, ...]) -> None:
    """Let CPython parse ``args`` with ``fmt`` and raise whatever it raises."""
    func = ctypes.pythonapi._PyArg_ParseTuple_SizeT
    func.restype = ctypes.c_int
    slots = [ctypes.create_string_buffer(16) for _ in range(2 * len(fmt) + 2)]
    func(ctypes.py_object(tuple(args)), fmt.encode(), *[ctypes.byref(s) for s in slots])


def _conv_s(a: Any) -> str:
    if type(a) is str and "\0" not in a:
        return a
    raise _Refused


def _conv_s_hash(a: Any) -> bytes:
    t = type(a)
    if t is bytes:
        return a
    if t is str:
        try:
            return a.encode()
        except UnicodeEncodeError:
            raise _Refused from None
    try:
        view = memoryview(a)
    except TypeError:
        raise _Refused from None
    if not view.readonly:
        raise _Refused
    return view.tobytes()


def _index(a: Any) -> int:
    if type(a) is int:
        return a
    if isinstance(a, float):
        raise _Refused
    try:
        return operator.index(a)
    except TypeError:
        raise _Refused from None


def _conv_B(a: Any) -> int:
    if type(a) is int:
        return a & 0xFF
    return _index(a) & 0xFF


def _conv_b(a: Any) -> int:
    v = _index(a)
    if 0 <= v <= 255:
        return v
    raise _Refused


def _conv_i(a: Any) -> int:
    v = a if type(a) is int else _index(a)
    if _INT_MIN <= v <= _INT_MAX:
        return v
    raise _Refused


def _conv_l(a: Any) -> int:
    v = a if type(a) is int else _index(a)
    if _I64_MIN <= v <= _I64_MAX:
        return v
    raise _Refused


def _conv_I(a: Any) -> int:
    return _index(a) & 0xFFFFFFFF


def _conv_K(a: Any) -> int:
    return _index(a) & 0xFFFFFFFFFFFFFFFF


def _conv_f(a: Any) -> float:
    if type(a) is float or type(a) is int:
        return float(a)
    try:
        return float(a.__float__()) if hasattr(a, "__float__") else float(operator.index(a))
    except TypeError:
        raise _Refused from None


def _conv_O(a: Any) -> Any:
    return a


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "s": _conv_s, "s#": _conv_s_hash, "B": _conv_B, "b": _conv_b, "i": _conv_i,
    "l": _conv_l, "L": _conv_l, "I": _conv_I, "K": _conv_K, "f": _conv_f, "O": _conv_O,
}


def parser(fmt: str) -> Callable[[tuple[Any, ...]], list[Any]]:
    """Compile ``fmt`` (e.g. ``"s#|ls:cache_set"``) into ``parse(args) -> [values]``.

    Optional arguments that were not given are absent from the result (the caller
    applies its defaults, as the C code does with its initial values).
    """
    codes, _, _name = fmt.partition(":")
    convs: list[Callable[[Any], Any]] = []
    required = -1
    i = 0
    while i < len(codes):
        ch = codes[i]
        if ch == "|":
            required = len(convs)
            i += 1
            continue
        if i + 1 < len(codes) and codes[i + 1] == "#":
            convs.append(_CONVERTERS[ch + "#"])
            i += 2
            continue
        convs.append(_CONVERTERS[ch])
        i += 1
    if required < 0:
        required = len(convs)
    maximum = len(convs)

    c0 = convs[0] if maximum > 0 else None
    c1 = convs[1] if maximum > 1 else None

    def parse(args: tuple[Any, ...]) -> list[Any]:
        n = len(args)
        if required <= n <= maximum:
            try:
                # Unrolled for the common arities: this runs on every uwsgi.* call.
                if n == 1:
                    return [c0(args[0])]  # type: ignore[misc]
                if n == 2:
                    return [c0(args[0]), c1(args[1])]  # type: ignore[misc]
                if n == 0:
                    return []
                return [conv(a) for conv, a in zip(convs, args)]
            except _Refused:
                pass
        _c_raise(fmt, args)
        # CPython accepted what the fast path refused (an exotic buffer or index
        # type): convert generically.
        return [_generic(conv, a) for conv, a in zip(convs, args)]

    return parse


def _generic(conv: Callable[[Any], Any], a: Any) -> Any:
    try:
        return conv(a)
    except _Refused:
        if conv is _conv_s:
            return str(a)
        if conv is _conv_s_hash:
            return bytes(memoryview(a))
        return operator.index(a)


def no_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise as a ``METH_VARARGS`` C function does when given keywords."""
    if kwargs:
        raise TypeError(f"{name}() takes no keyword arguments")


_CALL_FUNCTION_EX = __import__("dis").opmap["CALL_FUNCTION_EX"]


def kwargs_dict_passed(frame: Any) -> bool:
    """Whether the call being made in ``frame`` passed a ``**`` dict, even an empty one.

    A C function of uWSGI's declared ``METH_KEYWORDS`` gets ``kwargs == NULL`` for
    ``f()`` but an (empty) dict for ``f(**{})`` or a wrapper's ``f(*a, **kw)``; a Python
    function sees ``{}`` both ways, so the caller's call instruction tells them apart.
    """
    code = frame.f_code.co_code
    i = frame.f_lasti
    return code[i] == _CALL_FUNCTION_EX and bool(code[i + 1] & 1)
