/*
 * Optional C accelerator for the cache's one-call fast paths (simuwsgi.subsystems.cache).
 *
 * `Caches.facade_functions` builds, for the default cache in the common geometry (no
 * bitmap, blocks of at least 8 bytes, no LRU, lazy expiry or nodes), Python functions
 * whose first lines handle the common call (exact `bytes` arguments, no keywords) on
 * the cache's dicts and whose rest parses the call as uWSGI does. This module makes
 * builtin functions of those first lines, step for step:
 *
 *   setter(state) -> cache_set      state: (items, slots, free, faulted, keymax,
 *                                   maxsize, fallback)
 *   updater(state) -> cache_update  state: (items, slots, data, expires, faulted,
 *                                   maxsize, spill, fallback)
 *   deleter(state) -> cache_del     state: (items, slots, data, free, expires, spill,
 *                                   fallback)
 *   counter(name, state) -> cache_inc / cache_dec
 *                                   state: (items, step, read, faulted, fallback)
 *
 * `items`, `slots`, `expires`, `data` are the `Cache`'s dicts, `free` its free-slot
 * stack, `faulted` a list that is not empty once a CacheFull fault was planned (the
 * fast paths then step aside), `spill` `Cache._spill` (done here for bytes and int
 * values), `read` `Cache.counter`.
 * Every call a fast path does not take goes to `fallback`, the Python function, with
 * the same arguments: the Python code stays the one place where uWSGI's parsing, errors
 * and slow paths live, and it gives the same results for the calls done here (the tests
 * run both). Real uWSGI's cache functions are C functions that create no Python frame;
 * the Python twins cost one or two frames per call, which is what this saves.
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_core/_cutil.h"

#define ITEM(state, i) PyTuple_GET_ITEM((state), (i))

/* A call with exactly n positional exact-bytes arguments and no keywords. */
static int
plain_call(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t n)
{
    if (nargs != n || !no_keywords(kwnames)) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_CheckExact(args[i])) return 0;
    }
    return 1;
}

/* `d.pop(key, None)`: 1 if `key` was there, 0 if not, -1 on error. */
static int
discard(PyObject *d, PyObject *key)
{
    if (PyDict_GET_SIZE(d) == 0) return 0;
    int has = PyDict_Contains(d, key);
    if (has <= 0) return has;
    return PyDict_DelItem(d, key) < 0 ? -1 : 1;
}

/* cache_set(key, value): a new key takes the top free slot. */
static PyObject *
set_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *items = ITEM(state, 0), *free = ITEM(state, 2);
    if (plain_call(args, nargs, kwnames, 2) && PyList_GET_SIZE(ITEM(state, 3)) == 0) {
        PyObject *key = args[0], *value = args[1];
        int has = PyDict_Contains(items, key);
        if (has < 0) return NULL;
        if (has) Py_RETURN_NONE;
        Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = PyBytes_GET_SIZE(value);
        Py_ssize_t nfree = PyList_GET_SIZE(free);
        if (klen && vlen && klen <= PyLong_AsSsize_t(ITEM(state, 4))
                && vlen <= PyLong_AsSsize_t(ITEM(state, 5)) && nfree) {
            PyObject *slot = PyList_GET_ITEM(free, nfree - 1);
            Py_INCREF(slot);
            if (PyList_SetSlice(free, nfree - 1, nfree, NULL) < 0
                    || PyDict_SetItem(items, key, value) < 0
                    || PyDict_SetItem(ITEM(state, 1), key, slot) < 0) {
                Py_DECREF(slot);
                return NULL;
            }
            Py_DECREF(slot);
            Py_RETURN_TRUE;
        }
    }
    return fall_back(ITEM(state, 6), args, nargs, kwnames);
}

/* `Cache._spill(slot, value)`: a live item's value written to its block, `data[slot]`
 * (an int as its 8 bytes; bytes shorter than 8 over the stale bytes there). Values of
 * other types go to `spill`, the Python method. 0 on success, -1 on error. */
static int
spill(PyObject *data, PyObject *slot, PyObject *value, PyObject *py_spill)
{
    PyObject *block;
    if (PyLong_CheckExact(value)) {
        unsigned long long n = PyLong_AsUnsignedLongLong(value);
        if (n == (unsigned long long)-1 && PyErr_Occurred()) return -1;
        unsigned char raw[8];
        for (int i = 0; i < 8; i++) raw[i] = (unsigned char)(n >> (8 * i));
        block = PyBytes_FromStringAndSize((const char *)raw, 8);
    } else if (PyBytes_CheckExact(value)) {
        Py_ssize_t n = PyBytes_GET_SIZE(value);
        PyObject *old = n < 8 ? PyDict_GetItemWithError(data, slot) : NULL;
        if (old == NULL && PyErr_Occurred()) return -1;
        Py_buffer view;
        if (old != NULL) {
            if (PyObject_GetBuffer(old, &view, PyBUF_SIMPLE) < 0) return -1;
            Py_ssize_t end = view.len < 8 ? view.len : 8;
            if (end > n) {  /* value + old[n:8] */
                block = PyBytes_FromStringAndSize(NULL, end);
                if (block != NULL) {
                    memcpy(PyBytes_AS_STRING(block), PyBytes_AS_STRING(value), n);
                    memcpy(PyBytes_AS_STRING(block) + n, (const char *)view.buf + n, end - n);
                }
                PyBuffer_Release(&view);
                if (block == NULL) return -1;
                goto store;
            }
            PyBuffer_Release(&view);
        }
        Py_INCREF(value);
        block = value;
    } else {
        PyObject *r = PyObject_CallFunctionObjArgs(py_spill, slot, value, NULL);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    if (block == NULL) return -1;
store:;
    int rc = PyDict_SetItem(data, slot, block);
    Py_DECREF(block);
    return rc;
}

/* cache_update(key, value) of a present key (a value shorter than 8 bytes lies over
 * the old value's bytes, which are written to the block first). */
static PyObject *
update_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *items = ITEM(state, 0);
    if (plain_call(args, nargs, kwnames, 2) && PyList_GET_SIZE(ITEM(state, 4)) == 0) {
        PyObject *key = args[0], *value = args[1];
        Py_ssize_t vlen = PyBytes_GET_SIZE(value);
        PyObject *old = PyDict_GetItemWithError(items, key);  /* borrowed */
        if (old != NULL) {
            if (vlen == 0 || vlen > PyLong_AsSsize_t(ITEM(state, 5))) Py_RETURN_NONE;
            if (vlen < 8) {
                PyObject *slot = PyDict_GetItemWithError(ITEM(state, 1), key);
                if (slot == NULL) {
                    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
                    return NULL;
                }
                Py_INCREF(old);
                Py_INCREF(slot);
                int rc = spill(ITEM(state, 2), slot, old, ITEM(state, 6));
                Py_DECREF(old);
                Py_DECREF(slot);
                if (rc < 0) return NULL;
            }
            if (discard(ITEM(state, 3), key) < 0 || PyDict_SetItem(items, key, value) < 0) {
                return NULL;
            }
            Py_RETURN_TRUE;
        }
        if (PyErr_Occurred()) return NULL;
    }
    return fall_back(ITEM(state, 7), args, nargs, kwnames);
}

/* cache_del(key) of a present key: its slot goes back on the stack, its value to the
 * slot's block. */
static PyObject *
del_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *items = ITEM(state, 0), *slots = ITEM(state, 1);
    if (plain_call(args, nargs, kwnames, 1)) {
        PyObject *key = args[0];
        PyObject *value = PyDict_GetItemWithError(items, key);
        if (value != NULL) {
            PyObject *slot = PyDict_GetItemWithError(slots, key);
            if (slot == NULL) {
                if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
                return NULL;
            }
            Py_INCREF(value);
            Py_INCREF(slot);
            int rc = PyDict_DelItem(items, key) < 0 || PyDict_DelItem(slots, key) < 0;
            if (!rc) rc = spill(ITEM(state, 2), slot, value, ITEM(state, 5)) < 0;
            if (!rc) {
                rc = PyList_Append(ITEM(state, 3), slot) < 0 || discard(ITEM(state, 4), key) < 0;
            }
            Py_DECREF(value);
            Py_DECREF(slot);
            if (rc) return NULL;
            Py_RETURN_TRUE;
        }
        if (PyErr_Occurred()) return NULL;
    }
    return fall_back(ITEM(state, 6), args, nargs, kwnames);
}

/* cache_inc(key)/cache_dec(key) of a present key: (counter + step) mod 2**64, kept as
 * an int until something reads the bytes. */
static PyObject *
counter_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (plain_call(args, nargs, kwnames, 1) && PyList_GET_SIZE(ITEM(state, 3)) == 0) {
        PyObject *items = ITEM(state, 0), *key = args[0];
        PyObject *num = PyDict_GetItemWithError(items, key);  /* borrowed */
        if (num != NULL) {
            unsigned long long n;
            if (PyLong_CheckExact(num)) {
                n = PyLong_AsUnsignedLongLong(num);
            } else {
                PyObject *read = PyObject_CallOneArg(ITEM(state, 2), key);
                if (read == NULL) return NULL;
                n = PyLong_AsUnsignedLongLong(read);
                Py_DECREF(read);
            }
            if (n == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
            n += PyLong_AsUnsignedLongLong(ITEM(state, 1));  /* wraps mod 2**64 */
            PyObject *value = PyLong_FromUnsignedLongLong(n);
            if (value == NULL) return NULL;
            int rc = PyDict_SetItem(items, key, value);
            Py_DECREF(value);
            if (rc < 0) return NULL;
            Py_RETURN_TRUE;
        }
        if (PyErr_Occurred()) return NULL;
    }
    return fall_back(ITEM(state, 4), args, nargs, kwnames);
}

/* One definition per name: a builtin function's __name__ is its definition's. */
static PyMethodDef defs[] = {
    {"cache_set", FASTCALL(set_call), NULL},
    {"cache_update", FASTCALL(update_call), NULL},
    {"cache_del", FASTCALL(del_call), NULL},
    {"cache_inc", FASTCALL(counter_call), NULL},
    {"cache_dec", FASTCALL(counter_call), NULL},
};

/* The builtin function `name` over `state`, a tuple of `size` items. */
static PyObject *
make(const char *name, PyObject *state, Py_ssize_t size)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != size) {
        PyErr_Format(PyExc_TypeError, "%s: the state is a tuple of %zd items", name, size);
        return NULL;
    }
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (strcmp(defs[i].ml_name, name) == 0) return PyCFunction_NewEx(&defs[i], state, NULL);
    }
    PyErr_Format(PyExc_ValueError, "no fast path named %s", name);
    return NULL;
}

static PyObject *
new_setter(PyObject *module, PyObject *state) { return make("cache_set", state, 7); }

static PyObject *
new_updater(PyObject *module, PyObject *state) { return make("cache_update", state, 8); }

static PyObject *
new_deleter(PyObject *module, PyObject *state) { return make("cache_del", state, 7); }

static PyObject *
new_counter(PyObject *module, PyObject *args)
{
    const char *name;
    PyObject *state;
    if (!PyArg_ParseTuple(args, "sO:counter", &name, &state)) return NULL;
    if (strcmp(name, "cache_inc") != 0 && strcmp(name, "cache_dec") != 0) {
        PyErr_Format(PyExc_ValueError, "no counter named %s", name);
        return NULL;
    }
    return make(name, state, 5);
}

static PyMethodDef methods[] = {
    {"setter", new_setter, METH_O, "cache_set's fast path (state: see the module comment)."},
    {"updater", new_updater, METH_O, "cache_update's fast path (state: see the module comment)."},
    {"deleter", new_deleter, METH_O, "cache_del's fast path (state: see the module comment)."},
    {"counter", new_counter, METH_VARARGS, "counter(name, state): cache_inc/dec fast path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ccache",
    "C accelerator for simuwsgi.subsystems.cache (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__ccache(void)
{
    return PyModule_Create(&module);
}
