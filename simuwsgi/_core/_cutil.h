/*
 * The boilerplate the optional C accelerators share (simuwsgi's `_c*.c` files): calling
 * back into Python, making a fast path's builtin function over its state tuple, and a
 * module's setup (an attribute of another module, its types added). Everything here is
 * `static inline`, so a module that includes it and calls a helper costs the same as
 * the copy it replaces, and one that does not call it pays nothing.
 *
 * A file outside simuwsgi/_core includes it as "../_core/_cutil.h" (accel.py then counts
 * a change to it as making that build stale; pyproject.toml lists it in `depends`).
 */
#ifndef SIMUWSGI_CUTIL_H
#define SIMUWSGI_CUTIL_H

#include <Python.h>

/* A PyMethodDef's function and flags for a METH_FASTCALL | METH_KEYWORDS function. */
#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

/* func(*args): a new reference, NULL on error. */
static inline PyObject *
call(PyObject *func, PyObject *const *args, Py_ssize_t nargs)
{
    return PyObject_Vectorcall(func, args, nargs, NULL);
}

/* A vectorcall's keyword names: none given (NULL or empty). */
static inline int
no_keywords(PyObject *kwnames)
{
    return kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0;
}

/* The Python function a fast path hands its call to when it cannot take it itself. */
static inline PyObject *
fall_back(PyObject *fallback, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return PyObject_Vectorcall(fallback, args, nargs, kwnames);
}

/* obj.<name>(a, b, c), the arguments up to the first NULL: a new reference, NULL on
 * error. */
static inline PyObject *
call_method3(PyObject *obj, PyObject *name, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *args[] = {obj, a, b, c};
    Py_ssize_t n = a == NULL ? 1 : b == NULL ? 2 : c == NULL ? 3 : 4;
    return PyObject_VectorcallMethod(name, args, n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* call_method3 with the result dropped: 0, or -1 on error. */
static inline int
call_void3(PyObject *obj, PyObject *name, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *done = call_method3(obj, name, a, b, c);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

/* obj.<name>(a, b), the arguments up to the first NULL. */
static inline PyObject *
call_method(PyObject *obj, PyObject *name, PyObject *a, PyObject *b)
{
    return call_method3(obj, name, a, b, NULL);
}

/* call_method with the result dropped: 0, or -1 on error. */
static inline int
call_void(PyObject *obj, PyObject *name, PyObject *a, PyObject *b)
{
    return call_void3(obj, name, a, b, NULL);
}

/* The builtin function `def` over `state`, which must be a tuple of `size` items. */
static inline PyObject *
state_function(PyMethodDef *def, PyObject *state, Py_ssize_t size)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != size) {
        PyErr_Format(PyExc_TypeError, "%s: the state is a tuple of %zd items",
                     def->ml_name, size);
        return NULL;
    }
    return PyCFunction_NewEx(def, state, NULL);
}

/* `from <module> import <name>`: a new reference, NULL on error. */
static inline PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *found = PyImport_ImportModule(module);
    if (found == NULL) return NULL;
    Py_SETREF(found, PyObject_GetAttrString(found, name));
    return found;
}

/* The namespace dict of the module `name` (a new reference), NULL on error. */
static inline PyObject *
module_dict(const char *name)
{
    PyObject *module = PyImport_ImportModule(name);
    if (module == NULL) return NULL;
    PyObject *dict = Py_NewRef(PyModule_GetDict(module));
    Py_DECREF(module);
    return dict;
}

/* The module `def` with the `n` (ready) types `types` added under `names`, NULL on
 * error. */
static inline PyObject *
module_with_types(PyModuleDef *def, const char *const *names, PyTypeObject *const *types,
                  int n)
{
    PyObject *m = PyModule_Create(def);
    if (m == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}

#endif
