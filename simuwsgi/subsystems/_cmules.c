/*
 * Optional C accelerator for the mules' message round trip (simuwsgi.subsystems.mules).
 *
 * A mule round trip is `uwsgi.mule_msg(msg, N)` in a worker, handed straight to mule N
 * waiting in `uwsgi.mule_get_msg()` on its empty queue. `Mules.facade_functions` builds
 * both as Python functions; this module makes builtin functions of their common case,
 * step for step what the Python code does for it, and hands every other call to the
 * Python function (`fallback`, same arguments), which stays the one place where
 * parsing, errors, queueing, farms, signals and timeouts live:
 *
 *   sender(state) -> mule_msg    state: (private, mules, waiting, kernel, trace,
 *                                FARM_GET, fallback)
 *       mule_msg(msg, N) with exact bytes and int, when mule N waits (not in
 *       farm_get_msg, no timeout timer) on its empty private queue and the message
 *       fits the socket: the `mule.send` record, the waiter taken off `waiting`, the
 *       mule woken with ("msg", msg); True. (`_send_private`, `_send`, `_hand`.)
 *   getter(state) -> mule_get_msg  state: (kernel, Mule, private, shared, farms,
 *                                  waiting, wait, received, fallback)
 *       mule_get_msg() with no arguments, in a mule whose private queue and the
 *       shared queue are empty and no farm is configured: the mule waits (`waiting`
 *       holds `wait`, the shared untimed wait of the default flags), parks, and returns
 *       what it was handed: a message cut to 65536 bytes, anything else through
 *       `received(mule, item, 65536)`. (`get_msg`, `_scan`, `_park`, `_received`.)
 *
 * `private` maps a mule id to its MsgQueue, `mules` is the instance's id -> Mule map,
 * `waiting` the Mules' map of waiting mules to their _Wait. What these save is a
 * Python frame per step (four on each side of a round trip).
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_core/_cutil.h"

#define ITEM(state, i) PyTuple_GET_ITEM((state), (i))
#define MULE_READ_BUFFER 65536

static PyObject *str_add, *str_wake, *str_park, *str_now, *str_current, *str_name;
static PyObject *str_items, *str_mode, *str_timer, *str_sndbuf, *str_id, *str_queue;
static PyObject *str_bytes, *str_ok, *str_master, *str_mule_send, *str_msg;
static PyObject *str_mule_get_msg;

/* len(obj.<name>) == 0: 1 empty, 0 not, -1 error. */
static int
empty_attr(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    Py_ssize_t n = PyObject_Length(value);
    Py_DECREF(value);
    return n < 0 ? -1 : n == 0;
}

/* Whether mule_msg's direct hand-over applies (1), not (0), -1 on error; on 1, *taker
 * is the mule (borrowed from `mules`) and *length the message's length. */
static int
direct_taker(PyObject *state, PyObject *queue, PyObject *ident, PyObject *msg,
             PyObject **taker)
{
    PyObject *mule = PyDict_GetItemWithError(ITEM(state, 1), ident);
    if (mule == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *wait = PyDict_GetItemWithError(ITEM(state, 2), mule);
    if (wait == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *mode = PyObject_GetAttr(wait, str_mode);
    if (mode == NULL) return -1;
    int farm_get = PyObject_RichCompareBool(mode, ITEM(state, 5), Py_EQ);
    Py_DECREF(mode);
    if (farm_get != 0) return farm_get < 0 ? -1 : 0;
    int empty = empty_attr(queue, str_items);
    if (empty <= 0) return empty;
    PyObject *sndbuf = PyObject_GetAttr(queue, str_sndbuf);
    if (sndbuf == NULL) return -1;
    Py_ssize_t room = PyLong_AsSsize_t(sndbuf);
    Py_DECREF(sndbuf);
    if (room == -1 && PyErr_Occurred()) return -1;
    if (PyBytes_GET_SIZE(msg) > room - 32) return 0;
    PyObject *timer = PyObject_GetAttr(wait, str_timer);
    if (timer == NULL) return -1;
    Py_DECREF(timer);
    if (timer != Py_None) return 0;  /* a timed wait: the Python code cancels its timer */
    *taker = mule;
    return 1;
}

/* trace.add(kernel.now, proc.name if proc is not None else "master", "mule.send",
 *           {"queue": queue.name, "bytes": len(msg), "ok": True}) */
static int
record_send(PyObject *state, PyObject *queue, PyObject *msg)
{
    PyObject *kernel = ITEM(state, 3);
    PyObject *now = NULL, *proc = NULL, *who = NULL, *fields = NULL, *qname = NULL;
    PyObject *size = NULL, *done = NULL;
    int rc = -1;
    if ((now = PyObject_GetAttr(kernel, str_now)) == NULL
            || (proc = PyObject_GetAttr(kernel, str_current)) == NULL) goto out;
    who = proc != Py_None ? PyObject_GetAttr(proc, str_name) : Py_NewRef(str_master);
    if (who == NULL || (qname = PyObject_GetAttr(queue, str_name)) == NULL
            || (size = PyLong_FromSsize_t(PyBytes_GET_SIZE(msg))) == NULL
            || (fields = PyDict_New()) == NULL
            || PyDict_SetItem(fields, str_queue, qname) < 0
            || PyDict_SetItem(fields, str_bytes, size) < 0
            || PyDict_SetItem(fields, str_ok, Py_True) < 0) goto out;
    PyObject *args[] = {ITEM(state, 4), now, who, str_mule_send, fields};
    done = PyObject_VectorcallMethod(str_add, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    rc = done == NULL ? -1 : 0;
out:
    Py_XDECREF(now);
    Py_XDECREF(proc);
    Py_XDECREF(who);
    Py_XDECREF(qname);
    Py_XDECREF(size);
    Py_XDECREF(fields);
    Py_XDECREF(done);
    return rc;
}

static PyObject *
send_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = ITEM(state, 6);
    if (nargs != 2 || !no_keywords(kwnames)
            || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        return fall_back(fallback, args, nargs, kwnames);
    }
    PyObject *msg = args[0], *ident = args[1], *mule = NULL;
    PyObject *queue = PyDict_GetItemWithError(ITEM(state, 0), ident);
    if (queue == NULL) {
        return PyErr_Occurred() ? NULL : fall_back(fallback, args, nargs, kwnames);
    }
    Py_INCREF(queue);
    int direct = direct_taker(state, queue, ident, msg, &mule);
    if (direct <= 0) {
        Py_DECREF(queue);
        return direct < 0 ? NULL : fall_back(fallback, args, nargs, kwnames);
    }
    Py_INCREF(mule);
    PyObject *item = NULL, *woken = NULL;
    if (record_send(state, queue, msg) < 0
            || PyDict_DelItem(ITEM(state, 2), mule) < 0
            || (item = PyTuple_Pack(2, str_msg, msg)) == NULL) goto out;
    PyObject *wake_args[] = {ITEM(state, 3), mule, item};
    woken = PyObject_VectorcallMethod(str_wake, wake_args,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
out:
    Py_DECREF(queue);
    Py_DECREF(mule);
    Py_XDECREF(item);
    if (woken == NULL) return NULL;
    Py_DECREF(woken);
    Py_RETURN_TRUE;
}

/* Whether the no-argument mule_get_msg() of `proc` waits at once (1), not (0), -1. */
static int
waits_now(PyObject *state, PyObject *proc)
{
    int is_mule = PyObject_IsInstance(proc, ITEM(state, 1));
    if (is_mule <= 0) return is_mule;
    PyObject *ident = PyObject_GetAttr(proc, str_id);
    if (ident == NULL) return -1;
    PyObject *own = PyDict_GetItemWithError(ITEM(state, 2), ident);
    Py_DECREF(ident);
    if (own == NULL) return PyErr_Occurred() ? -1 : 0;
    int empty = empty_attr(own, str_items);
    if (empty <= 0) return empty;
    empty = empty_attr(ITEM(state, 3), str_items);
    if (empty <= 0) return empty;
    PyObject *farms = ITEM(state, 4);
    return PyList_Check(farms) && PyList_GET_SIZE(farms) == 0;
}

static PyObject *
get_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = ITEM(state, 8);
    if (nargs != 0 || !no_keywords(kwnames)) {
        return fall_back(fallback, args, nargs, kwnames);
    }
    PyObject *kernel = ITEM(state, 0);
    PyObject *proc = PyObject_GetAttr(kernel, str_current);
    if (proc == NULL) return NULL;
    int waits = waits_now(state, proc);
    if (waits <= 0) {
        Py_DECREF(proc);
        return waits < 0 ? NULL : fall_back(fallback, args, nargs, kwnames);
    }
    if (PyDict_SetItem(ITEM(state, 5), proc, ITEM(state, 6)) < 0) {
        Py_DECREF(proc);
        return NULL;
    }
    PyObject *park_args[] = {kernel, str_mule_get_msg};
    PyObject *item = PyObject_VectorcallMethod(str_park, park_args,
                                               2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    PyObject *result = NULL;
    if (item == NULL) goto out;
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        int is_msg = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, 0), str_msg, Py_EQ);
        if (is_msg < 0) goto out;
        if (is_msg) {
            result = PySequence_GetSlice(PyTuple_GET_ITEM(item, 1), 0, MULE_READ_BUFFER);
            goto out;
        }
    }
    PyObject *size = PyLong_FromLong(MULE_READ_BUFFER);
    if (size == NULL) goto out;
    result = PyObject_CallFunctionObjArgs(ITEM(state, 7), proc, item, size, NULL);
    Py_DECREF(size);
out:
    Py_DECREF(proc);
    Py_XDECREF(item);
    return result;
}

static PyMethodDef defs[] = {
    {"mule_msg", FASTCALL(send_call), NULL},
    {"mule_get_msg", FASTCALL(get_call), NULL},
};

static PyObject *
new_sender(PyObject *module, PyObject *state) { return state_function(&defs[0], state, 7); }

static PyObject *
new_getter(PyObject *module, PyObject *state) { return state_function(&defs[1], state, 9); }

static PyMethodDef methods[] = {
    {"sender", new_sender, METH_O, "mule_msg's fast path (state: see the module comment)."},
    {"getter", new_getter, METH_O,
     "mule_get_msg's fast path (state: see the module comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cmules",
    "C accelerator for simuwsgi.subsystems.mules (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__cmules(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_add, "add") INTERN(str_wake, "wake") INTERN(str_park, "park")
    INTERN(str_now, "now") INTERN(str_current, "current") INTERN(str_name, "name")
    INTERN(str_items, "items") INTERN(str_mode, "mode") INTERN(str_timer, "timer")
    INTERN(str_sndbuf, "sndbuf") INTERN(str_id, "id") INTERN(str_queue, "queue")
    INTERN(str_bytes, "bytes") INTERN(str_ok, "ok") INTERN(str_master, "master")
    INTERN(str_mule_send, "mule.send") INTERN(str_msg, "msg")
    INTERN(str_mule_get_msg, "mule_get_msg")
#undef INTERN
    return PyModule_Create(&module);
}
