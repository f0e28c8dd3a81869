/*
 * Optional C accelerator for the trace's per-record path (simuwsgi._core.trace).
 *
 * Every event of a simulation adds one record (a timer firing to 4 workers adds six,
 * a mule round trip four): `Trace.add(time, process, kind, fields)` keeps the record if
 * its kind passes the kinds filter, appends the row `(time, node, process, kind,
 * fields)` to the spool's in-memory tail, spills the tail when it is full, and, on a
 * cluster's node, appends the same row to the cluster's spool. In Python that is a
 * frame and a handful of attribute look-ups per record; here it is one builtin call.
 *
 *   SpoolCore   the fields a record's append reads: `tail` (the list of rows held in
 *               memory) and `limit` (rows before a spill). The base of `_spool.Spool`,
 *               whose Python methods (spill, reading back) are unchanged.
 *   TraceCore   the fields of `Trace.add` (`node`, `_spool`, the kinds filter
 *               `_keep_exact` / `_keep_prefixes`, the cluster's spool `_tee`) and
 *               `add` itself, step for step the Python `Trace.add` in trace.py (which
 *               runs when this module is not built, or with SIMUWSGI_PURE_PYTHON=1).
 *
 * A row whose values the garbage collector would never need to visit (a float time,
 * strings, a fields dict of plain values: what nearly every record holds) is not
 * tracked by it, as the collector itself would decide at its first pass; the rows held
 * in memory then cost the collections nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *str_spill;         /* "spill" */
static PyObject *str_startswith;    /* "startswith" */

/* -- the spool's fields ------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *tail;
    Py_ssize_t limit;
} SpoolCore;

static int
spool_traverse(SpoolCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tail);
    return 0;
}

static int
spool_clear(SpoolCore *self)
{
    Py_CLEAR(self->tail);
    return 0;
}

static void
spool_dealloc(SpoolCore *self)
{
    PyObject_GC_UnTrack(self);
    spool_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef spool_members[] = {
    {"tail", T_OBJECT_EX, offsetof(SpoolCore, tail), 0, NULL},
    {"limit", T_PYSSIZET, offsetof(SpoolCore, limit), 0, NULL},
    {NULL},
};

static PyTypeObject SpoolCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi._core._ctrace.SpoolCore",
    .tp_doc = "The fields of a spool a record's append reads (see _ctrace.c).",
    .tp_basicsize = sizeof(SpoolCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)spool_dealloc,
    .tp_traverse = (traverseproc)spool_traverse,
    .tp_clear = (inquiry)spool_clear,
    .tp_members = spool_members,
};

/* `tail.append(row); if len(tail) >= limit: spool.spill()` */
static int
append_row(PyObject *spool, PyObject *row)
{
    if (!PyObject_TypeCheck(spool, &SpoolCoreType)) {
        PyErr_Format(PyExc_TypeError, "a trace's spool must be a Spool, not %.100s",
                     Py_TYPE(spool)->tp_name);
        return -1;
    }
    PyObject *tail = ((SpoolCore *)spool)->tail;
    if (tail == NULL || !PyList_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "a spool's tail must be a list");
        return -1;
    }
    if (PyList_Append(tail, row) < 0) {
        return -1;
    }
    if (PyList_GET_SIZE(tail) >= ((SpoolCore *)spool)->limit) {
        PyObject *done = PyObject_CallMethodNoArgs(spool, str_spill);
        if (done == NULL) {
            return -1;
        }
        Py_DECREF(done);
    }
    return 0;
}

/* -- the trace's fields and add ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *node, *spool, *keep_exact, *keep_prefixes, *tee;
} TraceCore;

#define TRACE_FIELDS(X) X(node) X(spool) X(keep_exact) X(keep_prefixes) X(tee)

static int
trace_traverse(TraceCore *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    TRACE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
trace_clear(TraceCore *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    TRACE_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
trace_dealloc(TraceCore *self)
{
    PyObject_GC_UnTrack(self);
    trace_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* `kind in exact or kind.startswith(prefixes)` (1, 0, or -1 on error). */
static int
kept(TraceCore *self, PyObject *kind)
{
    int found = PySet_Contains(self->keep_exact, kind);
    if (found != 0) {
        return found;
    }
    PyObject *prefixes = self->keep_prefixes;
    if (PyUnicode_CheckExact(kind) && prefixes != NULL && PyTuple_CheckExact(prefixes)) {
        Py_ssize_t n = PyTuple_GET_SIZE(prefixes);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
            if (!PyUnicode_Check(prefix)) {
                goto generic;
            }
            Py_ssize_t match = PyUnicode_Tailmatch(kind, prefix, 0, PY_SSIZE_T_MAX, -1);
            if (match != 0) {
                return (int)match;
            }
        }
        return 0;
    }
generic:;
    PyObject *answer = PyObject_CallMethodOneArg(kind, str_startswith,
                                                 prefixes != NULL ? prefixes : Py_None);
    if (answer == NULL) {
        return -1;
    }
    found = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return found;
}

/* True when the collector would never need to visit `row`'s values (it untracks such
 * a tuple at its first pass). */
static int
plain_row(PyObject *time, PyObject *node, PyObject *process, PyObject *kind,
          PyObject *fields)
{
    return (PyFloat_CheckExact(time) || PyLong_CheckExact(time))
        && PyUnicode_CheckExact(node) && PyUnicode_CheckExact(process)
        && PyUnicode_CheckExact(kind)
        && PyDict_CheckExact(fields) && !PyObject_GC_IsTracked(fields);
}

static PyObject *
trace_add(TraceCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "add() takes 4 arguments (time, process, kind, "
                     "fields), %zd given", nargs);
        return NULL;
    }
    PyObject *time = args[0], *process = args[1], *kind = args[2], *fields = args[3];
    if (self->keep_exact != NULL && self->keep_exact != Py_None) {
        int keep = kept(self, kind);
        if (keep <= 0) {
            return keep < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    if (self->node == NULL || self->spool == NULL) {
        PyErr_SetString(PyExc_AttributeError, "the trace is not initialised");
        return NULL;
    }
    PyObject *row = PyTuple_Pack(5, time, self->node, process, kind, fields);
    if (row == NULL) {
        return NULL;
    }
    if (plain_row(time, self->node, process, kind, fields)) {
        PyObject_GC_UnTrack(row);
    }
    if (append_row(self->spool, row) < 0
            || (self->tee != NULL && self->tee != Py_None && append_row(self->tee, row) < 0)) {
        Py_DECREF(row);
        return NULL;
    }
    Py_DECREF(row);
    Py_RETURN_NONE;
}

static PyMethodDef trace_methods[] = {
    {"add", (PyCFunction)(void (*)(void))trace_add, METH_FASTCALL,
     "add(time, process, kind, fields): append a record (see Trace.add)."},
    {NULL},
};

static PyMemberDef trace_members[] = {
    {"node", T_OBJECT_EX, offsetof(TraceCore, node), 0, NULL},
    {"_spool", T_OBJECT_EX, offsetof(TraceCore, spool), 0, NULL},
    {"_keep_exact", T_OBJECT, offsetof(TraceCore, keep_exact), 0, NULL},
    {"_keep_prefixes", T_OBJECT, offsetof(TraceCore, keep_prefixes), 0, NULL},
    {"_tee", T_OBJECT, offsetof(TraceCore, tee), 0, NULL},
    {NULL},
};

static PyTypeObject TraceCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi._core._ctrace.TraceCore",
    .tp_doc = "The trace's per-record fields and add (see _ctrace.c).",
    .tp_basicsize = sizeof(TraceCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)trace_dealloc,
    .tp_traverse = (traverseproc)trace_traverse,
    .tp_clear = (inquiry)trace_clear,
    .tp_methods = trace_methods,
    .tp_members = trace_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ctrace",
    "Optional C accelerator for simuwsgi's trace records (see _ctrace.c).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__ctrace(void)
{
    str_spill = PyUnicode_InternFromString("spill");
    str_startswith = PyUnicode_InternFromString("startswith");
    if (!str_spill || !str_startswith || PyType_Ready(&SpoolCoreType) < 0
            || PyType_Ready(&TraceCoreType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&SpoolCoreType);
    Py_INCREF(&TraceCoreType);
    if (PyModule_AddObject(m, "SpoolCore", (PyObject *)&SpoolCoreType) < 0
            || PyModule_AddObject(m, "TraceCore", (PyObject *)&TraceCoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
