/*
 * Optional C accelerator for the vars-block hot path of simuwsgi.protocol._vars.
 *
 * Two functions, each doing only the common, well-formed case and answering None
 * for anything else, so that the pure-Python code (which reproduces uWSGI's quirks
 * and error messages) stays the single source of truth for every other input:
 *
 *   tile(data: bytes) -> tuple[tuple[bytes, bytes], ...] | None
 *       the pairs of a block that they tile exactly (u16le klen, key, u16le vlen,
 *       value ...), none with an empty key; None otherwise.
 *   join(pairs: list | tuple) -> bytes | None
 *       the block of (bytes, bytes) pairs (exact bytes objects, each at most 65535
 *       bytes); None for anything else.
 *   join_request(pairs) -> bytes | None
 *       join(), also None when a key is empty (uWSGI refuses such a request).
 *
 * If this module cannot be built, _vars.py runs its pure-Python fast path instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
tile(PyObject *self, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg)) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t end = PyBytes_GET_SIZE(arg);
    Py_ssize_t pos = 0, count = 0;

    /* First pass: check the tiling and count the pairs. */
    while (pos < end) {
        if (end - pos < 2) Py_RETURN_NONE;
        Py_ssize_t klen = data[pos] | (data[pos + 1] << 8);
        if (klen == 0) Py_RETURN_NONE;
        Py_ssize_t ke = pos + 2 + klen;
        if (ke + 2 > end) Py_RETURN_NONE;
        Py_ssize_t vlen = data[ke] | (data[ke + 1] << 8);
        pos = ke + 2 + vlen;
        if (pos > end) Py_RETURN_NONE;
        count++;
    }

    PyObject *out = PyTuple_New(count);
    if (out == NULL) return NULL;
    pos = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t klen = data[pos] | (data[pos + 1] << 8);
        Py_ssize_t ks = pos + 2, ke = ks + klen;
        Py_ssize_t vlen = data[ke] | (data[ke + 1] << 8);
        Py_ssize_t vs = ke + 2;
        pos = vs + vlen;
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + ks, klen);
        PyObject *value = key ? PyBytes_FromStringAndSize((const char *)data + vs, vlen) : NULL;
        PyObject *pair = value ? PyTuple_New(2) : NULL;
        if (pair == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, key);
        PyTuple_SET_ITEM(pair, 1, value);
        PyTuple_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *
join_impl(PyObject *arg, int require_keys)
{
    PyObject *seq;
    if (PyList_CheckExact(arg) || PyTuple_CheckExact(arg)) {
        seq = arg;
    } else {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t total = 0;

    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) Py_RETURN_NONE;
        PyObject *k = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(k) || !PyBytes_CheckExact(v)) Py_RETURN_NONE;
        Py_ssize_t kl = PyBytes_GET_SIZE(k), vl = PyBytes_GET_SIZE(v);
        if (kl > 0xFFFF || vl > 0xFFFF || (require_keys && kl == 0)) Py_RETURN_NONE;
        total += 4 + kl + vl;
    }

    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) return NULL;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        PyObject *k = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t kl = PyBytes_GET_SIZE(k), vl = PyBytes_GET_SIZE(v);
        *dst++ = (unsigned char)(kl & 0xFF);
        *dst++ = (unsigned char)(kl >> 8);
        memcpy(dst, PyBytes_AS_STRING(k), kl);
        dst += kl;
        *dst++ = (unsigned char)(vl & 0xFF);
        *dst++ = (unsigned char)(vl >> 8);
        memcpy(dst, PyBytes_AS_STRING(v), vl);
        dst += vl;
    }
    return out;
}

static PyObject *
join(PyObject *self, PyObject *arg)
{
    return join_impl(arg, 0);
}

static PyObject *
join_request(PyObject *self, PyObject *arg)
{
    return join_impl(arg, 1);
}

static PyMethodDef methods[] = {
    {"tile", tile, METH_O, "The pairs a well-formed vars block tiles exactly, or None."},
    {"join", join, METH_O, "The vars block of (bytes, bytes) pairs, or None."},
    {"join_request", join_request, METH_O, "join(), and None if a key is empty."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cvars",
    "C accelerator for simuwsgi.protocol._vars (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__cvars(void)
{
    return PyModule_Create(&module);
}
