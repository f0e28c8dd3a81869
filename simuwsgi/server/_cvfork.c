/*
 * Optional C accelerator for the virtual fork's per-call steps (simuwsgi.server.apps,
 * and `Instance.call_python` in simuwsgi.server.master).
 *
 * Every switch between two virtual processes calls `AppLoader.switch` (the kernel's
 * context hook), and every call the simulator makes into the app (a signal handler, the
 * WSGI callable, a mule's hook) asks `AppLoader.resolve` for the running process's copy
 * of the master's object. Both are a few lines over Python objects; this module makes
 * builtin functions of their common case, step for step what the Python methods do for
 * it, and hands every other call to the Python method (`fallback`, same arguments):
 *
 *   switcher(state) -> switch(outgoing, incoming)    state: (live, seen, fallback)
 *       when no module was added to or removed from sys.modules since the loader last
 *       looked (len(sys.modules) == len(seen): nothing to adopt) and `incoming` is an
 *       image: live[0] = incoming.
 *   resolver(state) -> resolve(obj)                  state: (live, fallback)
 *       the installed image live[0]: None, or the master's (its copier is None):
 *       `obj`; else the copy its copier's memo holds for id(obj) (what
 *       `ProcessImage.resolve` returns first), or `obj` itself when it is not a
 *       function (or bound method) of a copied module (its last line: the process's own
 *       copy, a hook it set). A function of a copied module not copied yet goes to the
 *       fallback.
 *   caller(state) -> call_python(func, *args)        state: (inst, CONTROL, failed,
 *                                                            fallback)
 *       `Instance.call_python`: (True, inst.app.resolve(func)(*args)); when that raises,
 *       a CONTROL exception goes on, any other becomes the exception being handled
 *       (as in an `except` clause) and `failed(exc)` ends the call (SystemExit ends the
 *       process, anything else is printed: (False, None)). Keywords go to the fallback.
 *
 * `live` is the loader's one-element list (the image the ModuleViews show), `seen` the
 * set of sys.modules names it last looked at (updated in place). What these save is
 * the Python frames of each step (one per switch, three per call into the app).
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python methods.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_cattr.h"
#include "../_core/_cutil.h"

#define ITEM(state, i) PyTuple_GET_ITEM((state), (i))

/* the attributes read here (see _cattr.h) */
ATTR_DECLARE(copier) ATTR_DECLARE(memo) ATTR_DECLARE(app) ATTR_DECLARE(resolve)
ATTR_DECLARE(globals_map)

static PyObject *
switch_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *live = ITEM(state, 0), *seen = ITEM(state, 1);
    if (nargs != 2 || kwnames != NULL || args[1] == Py_None || !PyList_CheckExact(live)
            || PyList_GET_SIZE(live) != 1 || !PyAnySet_Check(seen)) {
        return fall_back(ITEM(state, 2), args, nargs, kwnames);
    }
    /* sys.modules (the interpreter's dict, which the import system uses), borrowed */
    PyObject *modules = PyImport_GetModuleDict();
    if (!PyDict_Check(modules) || PyDict_GET_SIZE(modules) != PySet_GET_SIZE(seen)) {
        return fall_back(ITEM(state, 2), args, nargs, kwnames);
    }
    PyObject *old = PyList_GET_ITEM(live, 0);
    PyList_SET_ITEM(live, 0, Py_NewRef(args[1]));
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

/* `ProcessImage.resolve`'s last lines for an object the memo does not hold: 1 when it
 * is returned as it is (a function, or a bound method's, whose globals are not a copied
 * module's, such as the process's own copy; or not a function at all), 0 when the
 * copier must copy it, -1 on error. */
static int
owned_function(PyObject *copier, PyObject *obj)
{
    PyObject *func = Py_IS_TYPE(obj, &PyMethod_Type) ? PyMethod_GET_FUNCTION(obj) : obj;
    if (!Py_IS_TYPE(func, &PyFunction_Type)) return 1;
    PyObject *map = attr_get(&a_globals_map, copier);
    if (map == NULL) return -1;
    int own = 0;  /* not a dict: the Python method decides */
    if (PyDict_CheckExact(map)) {
        PyObject *key = PyLong_FromVoidPtr(PyFunction_GET_GLOBALS(func));
        int copied = key == NULL ? -1 : PyDict_Contains(map, key);
        Py_XDECREF(key);
        own = copied < 0 ? -1 : !copied;
    }
    Py_DECREF(map);
    return own;
}

static PyObject *
resolve_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *live = ITEM(state, 0);
    if (nargs != 1 || kwnames != NULL || !PyList_CheckExact(live)
            || PyList_GET_SIZE(live) != 1) {
        return fall_back(ITEM(state, 1), args, nargs, kwnames);
    }
    PyObject *obj = args[0], *image = PyList_GET_ITEM(live, 0);
    if (image == Py_None) {
        return Py_NewRef(obj);
    }
    PyObject *copier = attr_get(&a_copier, image);
    if (copier == NULL) {
        return NULL;
    }
    if (copier == Py_None) {
        Py_DECREF(copier);
        return Py_NewRef(obj);
    }
    PyObject *memo = attr_get(&a_memo, copier);
    if (memo == NULL) {
        Py_DECREF(copier);
        return NULL;
    }
    PyObject *mine = NULL;
    if (PyDict_CheckExact(memo)) {
        PyObject *key = PyLong_FromVoidPtr(obj);
        if (key == NULL) {
            Py_DECREF(memo);
            Py_DECREF(copier);
            return NULL;
        }
        mine = PyDict_GetItemWithError(memo, key);  /* borrowed */
        Py_DECREF(key);
        Py_XINCREF(mine);
    }
    Py_DECREF(memo);
    if (mine == NULL && !PyErr_Occurred()) {
        int own = owned_function(copier, obj);
        if (own > 0) mine = Py_NewRef(obj);
    }
    Py_DECREF(copier);
    if (mine != NULL || PyErr_Occurred()) {
        return mine;
    }
    return fall_back(ITEM(state, 1), args, nargs, kwnames);  /* not copied yet */
}

static PyObject *
call_python_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    if (nargs < 1 || kwnames != NULL) {
        return fall_back(ITEM(state, 3), args, nargs, kwnames);
    }
    PyObject *app = attr_get(&a_app, ITEM(state, 0)), *mine = NULL, *result = NULL;
    PyObject *resolve = app == NULL ? NULL : attr_get(&a_resolve, app);
    if (resolve != NULL) {
        mine = PyObject_CallOneArg(resolve, args[0]);
        Py_DECREF(resolve);
    }
    Py_XDECREF(app);
    if (mine != NULL) {
        result = PyObject_Vectorcall(mine, args + 1, nargs - 1, NULL);
        Py_DECREF(mine);
    }
    if (result != NULL) {
        PyObject *out = PyTuple_Pack(2, Py_True, result);
        Py_DECREF(result);
        return out;
    }
    if (PyErr_ExceptionMatches(ITEM(state, 1))) {
        return NULL;  /* the simulator's control flow (a kill, a stop): not the app's */
    }
    /* `except BaseException as exc: return failed(exc)`, with exc the exception being
     * handled while failed() runs (it prints sys.exc_info()'s traceback) */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_GetExcInfo(&saved_type, &saved_value, &saved_tb);
    PyErr_SetExcInfo(type, Py_NewRef(value), tb);  /* steals type, value, tb */
    result = PyObject_CallOneArg(ITEM(state, 2), value);
    PyErr_SetExcInfo(saved_type, saved_value, saved_tb);
    Py_DECREF(value);
    return result;
}

static PyMethodDef defs[] = {
    {"switch", FASTCALL(switch_call), NULL},
    {"resolve", FASTCALL(resolve_call), NULL},
    {"call_python", FASTCALL(call_python_call), NULL},
};

static PyObject *
new_switcher(PyObject *module, PyObject *state) { return state_function(&defs[0], state, 3); }

static PyObject *
new_resolver(PyObject *module, PyObject *state) { return state_function(&defs[1], state, 2); }

static PyObject *
new_caller(PyObject *module, PyObject *state) { return state_function(&defs[2], state, 4); }

static PyMethodDef methods[] = {
    {"switcher", new_switcher, METH_O,
     "AppLoader.switch's fast path (state: see the module comment)."},
    {"resolver", new_resolver, METH_O,
     "AppLoader.resolve's fast path (state: see the module comment)."},
    {"caller", new_caller, METH_O,
     "Instance.call_python (state: see the module comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cvfork",
    "C accelerator for simuwsgi.server.apps' virtual fork (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__cvfork(void)
{
    ATTR_INTERN(copier) ATTR_INTERN(memo) ATTR_INTERN(app) ATTR_INTERN(resolve)
    ATTR_INTERN(globals_map)
    return PyModule_Create(&module);
}
