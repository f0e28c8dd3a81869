"""The virtual fork: each virtual process gets its own copy of the app's modules.

Under real uWSGI the master imports the app and ``fork()`` gives every worker, mule and
spooler its own address space: a module-level counter incremented by worker 1 is not
seen by worker 2. In ``sim`` mode all processes share one interpreter, so the fork is
done by copying, once per forked process:

* every *app module* (see ``apps``) gets a new module object per process, whose
  globals are deep copies of the master's (one memo per fork, so two names bound to one
  object — ``from x import y`` — stay one object);
* functions whose globals are an app module's are rebuilt on that process's globals
  (``types.FunctionType(code, new_globals, ...)``), with their closure cells, defaults
  and attributes copied (a library decorator's wrapper around one is copied to hold the
  process's function; an ``lru_cache`` around one is a new, empty cache); classes
  defined in app modules are rebuilt too (their methods, properties and class
  attributes), so methods read the process's globals and class attributes are per
  process;
* ``sys.modules`` holds one ``ModuleView`` per app module for the whole simulation: it
  forwards every attribute access to the running process's module object, so a runtime
  ``import x``, ``sys.modules[__name__]`` or pickle's class lookup finds that process's
  copy. A switch between processes only changes which image the views forward to: its
  cost does not depend on the size of the app.

Objects the uWSGI tables hold for the master (a signal handler, an rpc function, the
spooler function, the WSGI callable) are master objects; ``ProcessImage.resolve`` maps
them to the running process's copies when the simulator calls them.

An object that cannot be copied (a socket, a C object, a file) is shared whole between
processes — never half-copied: whatever a failed copy had built is thrown away, and
everything that refers to the object refers to the master's. Unheld thread locks are
recreated unlocked, as ``fork()`` leaves them. An object of a library's class (not the
app's, not a builtin container) that holds such an object is shared whole too: the
library's own state refers to it (a metric's value and its memory-mapped file in the
library's list of values to reopen after a fork), so a copy of it beside the master's
would be half the library's. The shared objects are listed in ``Copier.shared``.

An app module first imported after the fork, by one process, becomes that process's;
another process that reaches it through ``sys.modules`` imports its own copy then (as
its own ``import`` would have), and a process forked later starts without it.

Not isolated: modules outside the app (third-party library state), classes with a metaclass other than ``type``/
``ABCMeta`` (shared, and listed; enums and werkzeug's ``LocalProxy`` — Flask's
``request`` — are shared silently), threads. ``mode="fork"``
isolates everything.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import copyreg
import enum
import functools
import gc
import itertools
import sys
import _threading_local
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Copier", "ModuleView", "ProcessImage"]

_MISSING = object()
_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())
_LRU_CACHE = type(functools.lru_cache()(len))
#: What a library's closure may hold of the app's code (see _copy_library_closure).
_CODE = frozenset({types.FunctionType, types.MethodType, _LRU_CACHE})

#: Values that are their own copy (as in ``copy``), plus modules (a library's; the app's
#: are mapped through the memo), the C-level descriptors found in class dicts and
#: read-only mappings.
_ATOMIC = frozenset({
    type(None), int, float, bool, complex, bytes, str, types.CodeType, type(Ellipsis),
    type(NotImplemented), range, types.ModuleType, types.WrapperDescriptorType,
    types.MethodWrapperType, types.MethodDescriptorType, types.ClassMethodDescriptorType,
    types.GetSetDescriptorType, types.MemberDescriptorType,
    types.MappingProxyType,  # read-only (a dataclass field's metadata)
})


#: Proxies of context-local state (Flask's ``request``, ``g``, ``current_app``): a copy
#: would proxy the same context variable, so they are shared, silently.
_PROXIES = frozenset({"werkzeug.local.LocalProxy"})


class ProcessImage:
    """One process's app modules: its own module objects (the master's are the
    originals) and the map from the master's objects to this process's copies."""

    __slots__ = ("modules", "copier")

    def __init__(self, modules: dict[str, types.ModuleType], copier: Copier | None) -> None:
        #: sys.modules name -> this process's module object
        self.modules = modules
        #: None for the master (whose objects are the originals)
        self.copier = copier

    def resolve(self, obj: Any) -> Any:
        """This process's copy of ``obj``, a master object a uWSGI table holds.

        Objects reachable from the app's globals were copied at fork time; a function
        of the app registered directly (a lambda, a closure, a bound method of an
        object no global refers to) is copied now, from the master's. Anything else
        (the process's own objects, the simulator's) is returned as it is.
        """
        copier = self.copier
        if copier is None:
            return obj
        mine = copier.memo.get(id(obj), _MISSING)
        if mine is not _MISSING:
            return mine
        func = obj.__func__ if type(obj) is types.MethodType else obj
        if type(func) is types.FunctionType and id(func.__globals__) in copier.globals_map:
            return copier.copy(obj)
        return obj


class ModuleView(types.ModuleType):
    """What ``sys.modules`` holds for an app module while processes have their own copies:
    every attribute access goes to the running process's module object."""

    def __init__(self, name: str, images: list[ProcessImage],
                 missing: Callable[[ProcessImage, str], types.ModuleType]) -> None:
        super().__init__(name)
        object.__setattr__(self, "_vfork_images", images)
        #: ``missing(image, name)``: the module for an image that has none yet (it was
        #: first imported after the fork, by another process)
        object.__setattr__(self, "_vfork_missing", missing)

    def __getattribute__(self, name: str) -> Any:
        target = _target(self)
        try:
            return getattr(target, name)
        except AttributeError:
            # a submodule another process imported after the fork: the import set it
            # on that process's package only
            sub = sys.modules.get(f"{target.__name__}.{name}")
            if sub is None:
                raise
            return sub

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_target(self), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(_target(self), name)

    def __dir__(self) -> list[str]:
        return dir(_target(self))

    def __repr__(self) -> str:
        return repr(_target(self))


def _target(view: ModuleView) -> types.ModuleType:
    get = object.__getattribute__
    # _vfork_images is a one-element list: the image installed now
    image = get(view, "_vfork_images")[0]
    name = get(view, "__name__")
    module = image.modules.get(name)
    return module if module is not None else get(view, "_vfork_missing")(image, name)


#: The modules of the builtin containers (set, deque, OrderedDict...): one that holds a
#: shared object is copied around it, as a list or dict is.
_CONTAINER_MODULES = frozenset(("builtins", "collections", "copyreg"))


class _Shared(Exception):  # noqa: N818 - a signal inside the copier, never raised out
    """A library's object holds an object shared whole: share it whole too."""


class Copier:
    """Deep-copies the master's app modules for one forked process.

    Mirrors ``copy.deepcopy`` (same memo, same reduce protocol) where ``fork()`` differs
    from it: functions and classes of the app are copied rather than shared, and so are
    bound methods, weak references and lru caches of them; thread locks are recreated
    unlocked. An object whose copy fails is shared whole and recorded, and nothing its
    failed copy built stays in the memo.
    """

    def __init__(self, app_modules: dict[str, types.ModuleType],
                 threads: dict[int, Any] | None = None, inherited: Iterable[Any] = ()) -> None:
        #: what every process has as the master's, silently (its log stream: fd 2), by id
        self._inherited = {id(x): x for x in inherited if x is not None}
        #: id(master object) -> this process's copy (kept alive by ``_keep``)
        self.memo: dict[int, Any] = dict(self._inherited)
        self._keep: list[Any] = []
        #: id(master module dict) -> this process's dict, for rebinding functions
        self.globals_map: dict[int, dict[str, Any]] = {}
        self._app_names = set(app_modules)
        #: (where, what) of each object shared instead of copied
        self.shared: list[tuple[str, str]] = []
        #: The global being copied (its module.name) while the modules are copied
        self._where = ""
        #: the forking thread's identity (id of its ``threading.local`` owner) -> the
        #: child's: the thread ``fork()`` keeps
        self._threads = threads or {}
        self._top: Any = _MISSING
        #: the objects shared whole (for the second pass, see _copy_all)
        self._shared_objects: list[Any] = []
        #: a library closure's cells of values it does not copy: (cell, master value),
        #: filled with the copy of the value if the app's globals reach it
        self._late_cells: list[tuple[types.CellType, Any]] = []
        self._handlers: dict[type, Any] = {
            list: self._copy_list, dict: self._copy_dict, tuple: self._copy_tuple,
            types.FunctionType: self._copy_function, types.MethodType: self._copy_method,
            types.CellType: self._copy_cell, classmethod: self._copy_wrapper,
            staticmethod: self._copy_wrapper, property: self._copy_property,
            types.BuiltinMethodType: self._copy_builtin_method,
            _LOCK: self._copy_lock, _RLOCK: self._copy_lock,
            _LRU_CACHE: self._copy_lru_cache, weakref.ref: self._copy_weakref,
            _threading_local._localimpl: self._copy_thread_local,
        }
        self.modules = self._copy_all(app_modules)

    def _copy_all(self, app_modules: dict[str, types.ModuleType],
                  ) -> dict[str, types.ModuleType]:
        """Copy the modules; if an object had to be shared whole, copy them again with
        everything that object reaches shared too (seeded in the memo as itself), until
        no new object is shared. Else two globals could disagree: a Flask ``app``
        shared whole holds the master's ``Cache`` as a key of ``app.extensions``, while
        the global ``cache``, copied on its own, would be another object."""
        seeded: set[int] = set()
        while True:
            modules = self._copy_modules(app_modules)
            reach = _reachable(self._shared_objects, app_modules.values(), self._inherited)
            if reach.keys() <= seeded:
                return modules
            seeded |= reach.keys()
            self.memo = {**reach, **self._inherited}
            self._keep = []
            self.globals_map = {}

    def _copy_modules(self, app_modules: dict[str, types.ModuleType],
                      ) -> dict[str, types.ModuleType]:
        memo = self.memo
        copies: dict[str, types.ModuleType] = {}
        for name, module in app_modules.items():
            new = types.ModuleType(module.__name__)
            if type(module) is not types.ModuleType:
                new.__class__ = type(module)
            memo[id(module)] = new
            memo[id(module.__dict__)] = self.globals_map[id(module.__dict__)] = new.__dict__
            copies[name] = new
        for name, module in app_modules.items():
            globs = copies[name].__dict__
            for key, value in list(module.__dict__.items()):
                if (key.startswith("__") and key.endswith("__")
                        and type(value) is not types.FunctionType):  # not __getattr__
                    globs[key] = value  # __builtins__, __spec__, __file__, ...
                else:
                    self._where, self._top = f"{name}.{key}", value
                    globs[key] = self.copy(value)
        self._where, self._top = "", _MISSING
        for cell, value in self._late_cells:
            cell.cell_contents = self.memo.get(id(value), value)
        self._late_cells = []
        return copies

    # -- the deep copy -----------------------------------------------------------------
    def copy(self, x: Any, _memo: Any = None) -> Any:
        """This process's copy of ``x`` (``_memo``: ``copy._reconstruct`` passes it)."""
        memo = self.memo
        key = id(x)
        y = memo.get(key, _MISSING)
        if y is not _MISSING:
            return y
        cls = type(x)
        if cls in _ATOMIC or _type_name(x) in _PROXIES:
            return x
        mark = len(memo)
        try:
            handler = self._handlers.get(cls)
            if handler is not None:
                y = handler(x)
            elif isinstance(x, type):
                y = self._copy_class(x)
            elif isinstance(x, types.ModuleType):
                y = x  # a library's module (the app's are in the memo)
            else:
                y = self._reduce(x)
        except _Shared as held:
            self._rollback(mark)
            self._share(x, f"{_type_name(x)} {held}")
            y = x
        except Exception as exc:  # noqa: BLE001 - any object may refuse to be copied
            self._rollback(mark)
            self._share(x, f"{_type_name(x)}: {str(exc).partition(chr(10))[0]}")
            y = x
        memo[key] = y
        if y is not x:
            self._keep.append(x)  # ids in the memo must stay the master objects'
        return y

    def _rollback(self, mark: int) -> None:
        """Forget every copy made since the memo had ``mark`` entries: a failed copy
        leaves nothing half-built that another reference could reach."""
        memo = self.memo
        for key in list(itertools.islice(reversed(memo), len(memo) - mark)):
            del memo[key]

    def _share(self, x: Any, what: str) -> None:
        if x is not self._top:
            what = f"holds {what}"  # shared inside the global, which is copied
        entry = (self._where or _type_name(x), what)
        if entry not in self.shared:  # the second pass finds the same ones
            self.shared.append(entry)
        self._shared_objects.append(x)

    def _reduce(self, x: Any) -> Any:
        mod = type(x).__module__
        if mod in self._app_names or mod in _CONTAINER_MODULES:
            return self._reduce_copy(x)
        shared, entries = len(self._shared_objects), len(self.shared)
        y = self._reduce_copy(x)
        if len(self._shared_objects) == shared:
            return y
        # a library's object holding one shared whole: shared whole itself (the caller
        # rolls its copy back), named by what it holds
        inner = (self.shared[-1][1].removeprefix("holds ") if len(self.shared) > entries
                 else "an object shared whole")
        del self._shared_objects[shared:], self.shared[entries:]
        raise _Shared(f"holding {inner}")

    def _reduce_copy(self, x: Any) -> Any:
        custom = getattr(x, "__deepcopy__", None)
        if custom is not None:
            return custom(self.memo)
        reductor = copyreg.dispatch_table.get(type(x))
        rv = reductor(x) if reductor is not None else x.__reduce_ex__(4)
        if isinstance(rv, str):
            return x
        # copy's own rebuilding, recursing through this copier
        reconstruct = copy._reconstruct  # type: ignore[attr-defined]
        return reconstruct(x, self.memo, *rv, deepcopy=self.copy)

    def _copy_list(self, x: list[Any]) -> list[Any]:
        y: list[Any] = []
        self.memo[id(x)] = y
        y.extend(self.copy(item) for item in x)
        return y

    def _copy_dict(self, x: dict[Any, Any]) -> dict[Any, Any]:
        y: dict[Any, Any] = {}
        self.memo[id(x)] = y
        for key, value in x.items():
            y[self.copy(key)] = self.copy(value)
        return y

    def _copy_tuple(self, x: tuple[Any, ...]) -> tuple[Any, ...]:
        items = [self.copy(item) for item in x]
        mine = self.memo.get(id(x), _MISSING)  # a cycle through the tuple
        if mine is not _MISSING:
            return mine  # type: ignore[no-any-return]
        if all(a is b for a, b in zip(items, x)):
            return x
        return tuple(items)

    def _copy_function(self, fn: types.FunctionType) -> types.FunctionType:
        globs = self.globals_map.get(id(fn.__globals__))
        if globs is None:
            return self._copy_library_closure(fn)
        memo = self.memo
        cells: list[types.CellType] = []
        fill: list[tuple[types.CellType, types.CellType]] = []
        for cell in fn.__closure__ or ():
            mine = memo.get(id(cell))
            if mine is None:
                mine = memo[id(cell)] = types.CellType()
                self._keep.append(cell)
                fill.append((cell, mine))
            cells.append(mine)
        new = types.FunctionType(fn.__code__, globs, fn.__name__, None,
                                 tuple(cells) if fn.__closure__ is not None else None)
        memo[id(fn)] = new  # before the cells: a closure may refer to its function
        for cell, mine in fill:
            self._fill_cell(cell, mine)
        new.__defaults__ = self.copy(fn.__defaults__)
        new.__kwdefaults__ = self.copy(fn.__kwdefaults__)
        new.__qualname__ = fn.__qualname__
        new.__module__ = fn.__module__
        new.__doc__ = fn.__doc__
        new.__annotations__ = fn.__annotations__
        if fn.__dict__:
            new.__dict__.update(self.copy(fn.__dict__))
        return new

    def _copy_library_closure(self, fn: types.FunctionType) -> types.FunctionType:
        """A library's function is shared, unless its closure holds the app's functions
        or classes (a library decorator's wrapper: ``contextmanager``, ``wraps``): then a
        copy of it, on the library's globals, holds this process's. Its other values
        are the library's state, shared, except those the app's globals reach too
        (flask-caching's ``cached`` wrapper holds the ``Cache`` the app keeps in a
        global): they are this process's copy, once the copy is complete."""
        if fn.__closure__ is None:
            return fn
        self.memo[id(fn)] = fn  # while its cells are copied (they may refer to it)
        originals = _cell_contents(fn)
        code = [type(value) in _CODE or isinstance(value, type) for value in originals]
        contents = [self.copy(value) if is_code else value
                    for value, is_code in zip(originals, code)]
        if all(a is b for a, b in zip(contents, originals)):
            return fn
        cells = tuple(types.CellType(value) if value is not _MISSING else types.CellType()
                      for value in contents)
        self._late_cells += [(cell, value) for cell, value, is_code
                             in zip(cells, originals, code)
                             if not is_code and type(value) not in _ATOMIC
                             and value is not _MISSING]
        new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__,
                                 fn.__defaults__, cells)
        new.__kwdefaults__ = fn.__kwdefaults__
        new.__qualname__ = fn.__qualname__
        new.__dict__.update(fn.__dict__)
        return new

    def _copy_lru_cache(self, cached: Any) -> Any:
        """An ``lru_cache`` of an app function: a new cache (empty: its entries cannot be
        read) around this process's function."""
        wrapped = self.copy(cached.__wrapped__)
        if wrapped is cached.__wrapped__:
            return cached  # a library's cache: shared
        return functools.lru_cache(**cached.cache_parameters())(wrapped)

    def _copy_thread_local(self, impl: Any) -> Any:
        """The state of a pure-Python ``threading.local`` (what ``threading.local`` is in
        a simulation), under a key of its own: the key names the local in each thread's
        ``__dict__``, and a copy sharing the master's would remove another copy's entry
        there when it dies. The forking thread's data becomes the child's main thread's,
        as after ``fork()``; other threads' data stays theirs."""
        mine = object.__new__(type(impl))
        self.memo[id(impl)] = mine
        mine.key = f"_threading_local._localimpl.{id(mine)}"
        mine.dicts = {}
        mine.localargs = self.copy(impl.localargs)
        mine.locallock = self.copy(impl.locallock)
        for ident, (thread, data) in impl.dicts.items():
            child = self._threads.get(ident)
            if child is None:
                mine.dicts[ident] = (thread, self.copy(data))
                continue
            owner = _threading_local.current_thread  # type: ignore[attr-defined]
            _threading_local.current_thread = lambda: child  # type: ignore[attr-defined]
            try:  # the library's own bookkeeping of a thread's dict, for the child
                mine.create_dict().update(self.copy(data))
            finally:
                _threading_local.current_thread = owner  # type: ignore[attr-defined]
        return mine

    def _copy_weakref(self, ref: weakref.ref[Any]) -> weakref.ref[Any]:
        """A reference to this process's copy of the referent (and callback)."""
        target = ref()
        mine = self.copy(target)
        if mine is target:
            return ref
        callback = ref.__callback__
        return weakref.ref(mine, callback if callback is None else self.copy(callback))

    def _copy_cell(self, cell: types.CellType) -> types.CellType:
        mine = types.CellType()
        self.memo[id(cell)] = mine
        self._fill_cell(cell, mine)
        return mine

    def _fill_cell(self, cell: types.CellType, mine: types.CellType) -> None:
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name not bound yet)
            return
        mine.cell_contents = self.copy(contents)

    def _copy_method(self, method: types.MethodType) -> types.MethodType:
        return types.MethodType(self.copy(method.__func__), self.copy(method.__self__))

    def _copy_wrapper(self, x: Any) -> Any:
        new = type(x)(self.copy(x.__func__))
        if x.__dict__:
            new.__dict__.update(self.copy(x.__dict__))
        return new

    def _copy_property(self, x: property) -> property:
        return property(self.copy(x.fget), self.copy(x.fset), self.copy(x.fdel), x.__doc__)

    def _copy_builtin_method(self, x: Any) -> Any:
        """``lock.acquire``, ``items.append``: the same method of the copied owner."""
        owner = x.__self__
        mine = self.copy(owner)
        return x if mine is owner else getattr(mine, x.__name__)

    def _copy_lock(self, lock: Any) -> Any:
        """A fresh lock for an unheld one, as ``fork()`` leaves it; a held lock is shared."""
        if not lock.acquire(blocking=False):
            raise TypeError("held by a thread at fork time")
        lock.release()
        return threading.RLock() if type(lock) is _RLOCK else threading.Lock()

    def _copy_class(self, cls: type) -> type:
        if cls.__module__ not in self._app_names:
            return cls  # a library's class: shared
        meta = type(cls)
        if meta is not type and meta is not abc.ABCMeta:
            # rebuilding it would have to run the metaclass again (ORM models); an
            # enum's members are constants, shared as the enum is
            if not isinstance(cls, enum.EnumMeta):
                self._share(cls, f"class with metaclass {meta.__module__}.{meta.__qualname__}")
            return cls
        namespace: dict[str, Any] = {"__module__": cls.__module__,
                                     "__qualname__": cls.__qualname__}
        if "__slots__" in cls.__dict__:
            namespace["__slots__"] = cls.__dict__["__slots__"]
        bases = tuple(self.copy(base) for base in cls.__bases__)
        mine = self.memo.get(id(cls))
        if mine is not None:
            return mine  # a base's attributes refer to this class: copied through them
        # type.__new__, not the metaclass: the class body and __set_name__ ran already.
        # A base of the app does not see the copy made (its __init_subclass__ would
        # register it a second time).
        with _quiet_init_subclass(bases[0] if bases[0] is not cls.__bases__[0] else None):
            new = type.__new__(meta, cls.__name__, bases, namespace)
        self.memo[id(cls)] = new  # before its attributes: methods refer to the class
        for key, value in cls.__dict__.items():
            if key in namespace or key in ("__dict__", "__weakref__", "_abc_impl") or (
                    type(value) is types.MemberDescriptorType and value.__objclass__ is cls):
                continue
            setattr(new, key, self.copy(value))
        if meta is abc.ABCMeta:
            abc._abc_init(new)  # type: ignore[attr-defined]
        return new


def _reachable(roots: list[Any], modules: Iterable[types.ModuleType] = (),
               inherited: Iterable[int] = ()) -> dict[int, Any]:
    """Every object reachable from ``roots`` (id -> object), without going into
    modules, module globals (``modules``' too: the app's, behind their views in
    ``sys.modules``), classes (reached, not gone into) or the ``inherited`` objects (the
    simulator's log stream would lead to the whole instance): those are the fork's to
    copy or share."""
    stop = {id(m.__dict__) for m in [*sys.modules.values(), *modules] if m is not None}
    stop.update(inherited)
    out: dict[int, Any] = {}
    todo = list(roots)
    while todo:
        obj = todo.pop()
        key = id(obj)
        if (key in out or key in stop or type(obj) in _ATOMIC
                or isinstance(obj, types.ModuleType)):
            continue
        out[key] = obj
        if isinstance(obj, type):  # the class of a shared object is shared with it (an
            continue  # isinstance() in the process must hold), not what it holds
        if not _simulator_object(obj):  # (a virtual lock holds the whole simulation)
            todo.extend(gc.get_referents(obj))
    return out


def _simulator_object(obj: Any) -> bool:
    """An object of the simulator's own (a virtual lock, a process's token), not of the
    app's ``uwsgidecorators``."""
    module = type(obj).__module__
    return module.startswith("simuwsgi.") and module != "simuwsgi.uwsgidecorators"


def _cell_contents(fn: types.FunctionType) -> list[Any]:
    out = []
    for cell in fn.__closure__ or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            out.append(_MISSING)
    return out


@contextlib.contextmanager
def _quiet_init_subclass(base: type | None) -> Iterator[None]:
    """While the block runs, subclassing ``base`` (a copied class) calls no
    ``__init_subclass__``."""
    if base is None:
        yield
        return
    saved = base.__dict__.get("__init_subclass__", _MISSING)
    base.__init_subclass__ = classmethod(_no_init_subclass)  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is _MISSING:
            del base.__init_subclass__
        else:
            base.__init_subclass__ = saved  # type: ignore[method-assign]


def _no_init_subclass(cls: type, **kwargs: Any) -> None:
    pass


def _type_name(x: Any) -> str:
    cls = x if isinstance(x, type) else type(x)
    return f"{cls.__module__}.{cls.__qualname__}"
