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
 *   pack/unpack the spool's chunk codec (below), marshal's twin for rows of plain
 *               values, at about half its cost.
 *   packed      the msgpack encoding of rows for files and the digest (below), the
 *               twin of trace.py's `_packed`.
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
#include <marshal.h>
#include <math.h>
#include <string.h>
#include <structmember.h>

#include "_cutil.h"

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


/* -- the spool's chunk codec ------------------------------------------------------------
 *
 * A spilled chunk is a list of rows, and rows are small tuples of plain values where
 * the same few strings recur (the node, the process names, the kinds, the field
 * names). `pack(value)` writes a value as a tag byte and its content:
 *
 *   NONE FALSE TRUE            no content (tags: TAG_NONE...)
 *   INT                        a zigzag varint (an int of 64 bits or less)
 *   FLOAT                      the 8 bytes of the double, native order
 *   FLOAT_AGAIN                the last FLOAT written again (the records of one instant)
 *   FLOAT_STEP                 varint k: the last FLOAT plus k, when that sum is exactly the
 *                              value (a run's instants are often whole seconds apart: 2
 *                              bytes instead of 9, and less for zlib)
 *   STR_NEW                    varint length + UTF-8; the string takes the next number
 *   STR_REF                    varint number of a string written before in this chunk
 *   STR_EDIT                   a new string (numbered as STR_NEW) told as an edit of the
 *                              last new one: varint bytes kept from its start, varint
 *                              bytes kept from its end, varint length + the UTF-8 between
 *   BYTES                      varint length + the bytes
 *   TUPLE LIST DICT            varint count + items (a dict: key, value, key, value...)
 *   MARSHAL                    varint length + `marshal.dumps(value)`: any other value
 *                              (a big int, a set, a subclass; marshal refuses what it
 *                              cannot write, as the Python spill expects)
 *
 * `unpack(data)` gives back an equal value of the same types. A string is recognised by
 * identity (the recurring ones are the same objects), so it is a pointer hash, not a
 * string comparison. The file is the process's own (anonymous, read back by the same
 * build), so the byte order of a float is the machine's. Python's twin is marshal.
 *
 * STR_EDIT is for the log: its lines are new strings that mostly repeat the line before
 * but for a date and a counter ("Sat Feb 21 04:21:01 2026 - [uwsgi-cron] routing signal
 * 1"), so a line costs a few bytes instead of ~70, and zlib, whose time grows with its
 * input, has a tenth of it to compress. (The edit is by bytes: a cut through a UTF-8
 * sequence is whole again once the three pieces are joined.)
 */

enum { TAG_NONE, TAG_FALSE, TAG_TRUE, TAG_INT, TAG_FLOAT, TAG_FLOAT_AGAIN, TAG_STR_NEW, TAG_STR_REF, TAG_BYTES, TAG_TUPLE,
       TAG_LIST, TAG_DICT, TAG_MARSHAL, TAG_STR_EDIT, TAG_FLOAT_STEP };

#define MAX_DEPTH 64    /* deeper values are written by marshal (which has its limit) */

typedef struct {
    char *buf;
    size_t len, cap;
    PyObject **keys;    /* the strings written, by pointer (open addressing) */
    Py_ssize_t *numbers;
    size_t slots, used;
    double last;        /* the last FLOAT written (valid when has_last) */
    int has_last;
    const char *prev;   /* the UTF-8 of the last new string written (NULL: none yet) */
    Py_ssize_t prev_size;
} Writer;

/* The largest FLOAT_STEP (a step of whole units that a double holds exactly). */
#define MAX_STEP 9007199254740992.0  /* 2^53 */

/* An edit saves its cost (two more varints) and more from this many bytes kept. */
#define MIN_KEPT 4

static int
reserve(Writer *w, size_t more)
{
    if (w->len + more <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more) cap *= 2;
    char *buf = PyMem_Realloc(w->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->buf = buf;
    w->cap = cap;
    return 0;
}

static int
put_byte(Writer *w, unsigned char byte)
{
    if (reserve(w, 1) < 0) return -1;
    w->buf[w->len++] = (char)byte;
    return 0;
}

static int
put_varint(Writer *w, unsigned long long n)
{
    if (reserve(w, 10) < 0) return -1;
    while (n >= 0x80) {
        w->buf[w->len++] = (char)(n | 0x80);
        n >>= 7;
    }
    w->buf[w->len++] = (char)n;
    return 0;
}

static int
put_raw(Writer *w, const void *data, size_t size)
{
    if (reserve(w, size) < 0) return -1;
    memcpy(w->buf + w->len, data, size);
    w->len += size;
    return 0;
}

static size_t
slot_of(Writer *w, PyObject *key)
{
    size_t mask = w->slots - 1;
    size_t i = ((size_t)key >> 4) * 0x9E3779B97F4A7C15ull & mask;
    while (w->keys[i] != NULL && w->keys[i] != key) i = (i + 1) & mask;
    return i;
}

static int
grow_strings(Writer *w)
{
    size_t old = w->slots;
    PyObject **keys = w->keys;
    Py_ssize_t *numbers = w->numbers;
    w->slots = old ? old * 2 : 256;
    w->keys = PyMem_Calloc(w->slots, sizeof(PyObject *));
    w->numbers = PyMem_Malloc(w->slots * sizeof(Py_ssize_t));
    if (w->keys == NULL || w->numbers == NULL) {
        PyErr_NoMemory();
        PyMem_Free(keys);
        PyMem_Free(numbers);
        return -1;
    }
    for (size_t i = 0; i < old; i++) {
        if (keys[i] != NULL) {
            size_t j = slot_of(w, keys[i]);
            w->keys[j] = keys[i];
            w->numbers[j] = numbers[i];
        }
    }
    PyMem_Free(keys);
    PyMem_Free(numbers);
    return 0;
}

static int put_value(Writer *w, PyObject *value, int depth);

static int
put_marshal(Writer *w, PyObject *value)
{
    PyObject *data = PyMarshal_WriteObjectToString(value, Py_MARSHAL_VERSION);
    if (data == NULL) return -1;
    int rc = put_byte(w, TAG_MARSHAL) < 0 || put_varint(w, PyBytes_GET_SIZE(data)) < 0
        || put_raw(w, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) < 0 ? -1 : 0;
    Py_DECREF(data);
    return rc;
}

/* How many of the first `n` bytes of `a` and `b` are the same before the first that
 * differs (eight at a time: a log line is ~70 bytes). */
static Py_ssize_t
common_head(const char *a, const char *b, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (uint64_t x, y; i + 8 <= n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) break;
    }
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* How many of the last `n` bytes before `a_end` and `b_end` are the same, backwards. */
static Py_ssize_t
common_tail(const char *a_end, const char *b_end, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (uint64_t x, y; i + 8 <= n; i += 8) {
        memcpy(&x, a_end - i - 8, 8);
        memcpy(&y, b_end - i - 8, 8);
        if (x != y) break;
    }
    while (i < n && a_end[-1 - i] == b_end[-1 - i]) i++;
    return i;
}

static int
put_str(Writer *w, PyObject *value)
{
    if ((w->used + 1) * 2 > w->slots && grow_strings(w) < 0) return -1;
    size_t i = slot_of(w, value);
    if (w->keys[i] != NULL) {
        return put_byte(w, TAG_STR_REF) < 0 || put_varint(w, w->numbers[i]) < 0 ? -1 : 0;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(value, &size);
    if (text == NULL) {  /* lone surrogates: marshal writes them */
        PyErr_Clear();
        return put_marshal(w, value);
    }
    w->keys[i] = value;  /* alive while the rows are: the caller holds them */
    w->numbers[i] = (Py_ssize_t)w->used++;
    const char *prev = w->prev;
    Py_ssize_t prev_size = w->prev_size, head = 0, tail = 0;
    Py_ssize_t most = size < prev_size ? size : prev_size;
    w->prev = text;  /* the string's own UTF-8: alive as long as the string */
    w->prev_size = size;
    if (prev != NULL) {
        head = common_head(text, prev, most);
        tail = common_tail(text + size, prev + prev_size, most - head);
    }
    if (head + tail < MIN_KEPT) {
        return put_byte(w, TAG_STR_NEW) < 0 || put_varint(w, size) < 0
            || put_raw(w, text, size) < 0 ? -1 : 0;
    }
    return put_byte(w, TAG_STR_EDIT) < 0 || put_varint(w, head) < 0 || put_varint(w, tail) < 0
        || put_varint(w, size - head - tail) < 0 || put_raw(w, text + head, size - head - tail) < 0
        ? -1 : 0;
}

static int
put_items(Writer *w, unsigned char tag, PyObject *const *items, Py_ssize_t n, int depth)
{
    if (put_byte(w, tag) < 0 || put_varint(w, n) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (put_value(w, items[i], depth + 1) < 0) return -1;
    }
    return 0;
}

static int
put_value(Writer *w, PyObject *value, int depth)
{
    if (value == Py_None) return put_byte(w, TAG_NONE);
    if (value == Py_False) return put_byte(w, TAG_FALSE);
    if (value == Py_True) return put_byte(w, TAG_TRUE);
    if (PyUnicode_CheckExact(value)) return put_str(w, value);
    if (PyFloat_CheckExact(value)) {
        double d = PyFloat_AS_DOUBLE(value);
        if (w->has_last && memcmp(&d, &w->last, sizeof d) == 0) {
            return put_byte(w, TAG_FLOAT_AGAIN);
        }
        double step = d - w->last, sum = w->last + step;
        int stepped = w->has_last && step >= 1 && step < MAX_STEP && step == floor(step)
                      && memcmp(&sum, &d, sizeof d) == 0;
        w->last = d;
        w->has_last = 1;
        if (stepped) {
            return put_byte(w, TAG_FLOAT_STEP) < 0 || put_varint(w, (unsigned long long)step) < 0
                ? -1 : 0;
        }
        return put_byte(w, TAG_FLOAT) < 0 || put_raw(w, &d, sizeof d) < 0 ? -1 : 0;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (n == -1 && PyErr_Occurred()) return -1;
        if (!overflow) {
            unsigned long long zigzag = ((unsigned long long)n << 1) ^ (unsigned long long)(n >> 63);
            return put_byte(w, TAG_INT) < 0 || put_varint(w, zigzag) < 0 ? -1 : 0;
        }
    }
    else if (depth < MAX_DEPTH) {
        if (PyTuple_CheckExact(value)) {
            return put_items(w, TAG_TUPLE, &PyTuple_GET_ITEM(value, 0), PyTuple_GET_SIZE(value),
                             depth);
        }
        if (PyList_CheckExact(value)) {
            return put_items(w, TAG_LIST, &PyList_GET_ITEM(value, 0), PyList_GET_SIZE(value),
                             depth);
        }
        if (PyBytes_CheckExact(value)) {
            return put_byte(w, TAG_BYTES) < 0 || put_varint(w, PyBytes_GET_SIZE(value)) < 0
                || put_raw(w, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)) < 0 ? -1 : 0;
        }
        if (PyDict_CheckExact(value)) {
            if (put_byte(w, TAG_DICT) < 0 || put_varint(w, PyDict_GET_SIZE(value)) < 0) return -1;
            Py_ssize_t pos = 0;
            PyObject *k, *v;
            while (PyDict_Next(value, &pos, &k, &v)) {
                if (put_value(w, k, depth + 1) < 0 || put_value(w, v, depth + 1) < 0) return -1;
            }
            return 0;
        }
    }
    return put_marshal(w, value);
}

/* The buffers of the last pack, kept for the next (a spill every few thousand rows:
 * fresh ones cost page faults and a dozen reallocations and rehashes each time), up to
 * these sizes. */
static Writer spare;
#define SPARE_BYTES (4 << 20)
#define SPARE_SLOTS (1 << 16)

static PyObject *
codec_pack(PyObject *module, PyObject *value)
{
    Writer w = {0};
    w.buf = spare.buf, w.cap = spare.cap;  /* (taken: a pack within a pack starts afresh) */
    w.keys = spare.keys, w.numbers = spare.numbers, w.slots = spare.slots;
    spare = (Writer){0};
    if (w.keys != NULL) memset(w.keys, 0, w.slots * sizeof(PyObject *));
    PyObject *out = NULL;
    if (put_value(&w, value, 0) == 0) out = PyBytes_FromStringAndSize(w.buf, w.len);
    if (spare.buf == NULL && w.cap <= SPARE_BYTES && w.slots <= SPARE_SLOTS) {
        spare.buf = w.buf, spare.cap = w.cap;
        spare.keys = w.keys, spare.numbers = w.numbers, spare.slots = w.slots;
    } else {
        PyMem_Free(w.buf);
        PyMem_Free(w.keys);
        PyMem_Free(w.numbers);
    }
    return out;
}

typedef struct {
    const unsigned char *at, *end;
    PyObject *strings;  /* list: the chunk's strings by number */
    PyObject *last;     /* the last FLOAT read (NULL before the first) */
    PyObject *prev;     /* the last new string read (borrowed from strings; NULL: none) */
} Reader;

static int
truncated(void)
{
    PyErr_SetString(PyExc_ValueError, "a spool chunk ends early");
    return -1;
}

static int
get_varint(Reader *r, unsigned long long *n)
{
    unsigned long long value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->at >= r->end) return truncated();
        unsigned char byte = *r->at++;
        value |= (unsigned long long)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *n = value;
            return 0;
        }
    }
    PyErr_SetString(PyExc_ValueError, "a spool chunk holds a bad number");
    return -1;
}

/* A varint that counts `unit`-byte things still ahead in the data. */
static int
get_size(Reader *r, Py_ssize_t *size, size_t unit)
{
    unsigned long long n;
    if (get_varint(r, &n) < 0) return -1;
    if (n > (unsigned long long)(r->end - r->at) / unit) return truncated();
    *size = (Py_ssize_t)n;
    return 0;
}

static PyObject *get_value(Reader *r);

/* The string of `size` UTF-8 bytes at `text` (NULL: error), numbered in the chunk. */
static PyObject *
new_string(Reader *r, const char *text, Py_ssize_t size)
{
    PyObject *s = PyUnicode_DecodeUTF8(text, size, NULL);
    if (s == NULL || PyList_Append(r->strings, s) < 0) {
        Py_XDECREF(s);
        return NULL;
    }
    r->prev = s;
    return s;
}

/* STR_EDIT's string: the last new one's first `head` and last `tail` bytes around the
 * bytes in the chunk. */
static PyObject *
edited_string(Reader *r)
{
    unsigned long long head, tail;
    Py_ssize_t middle, prev_size;
    if (get_varint(r, &head) < 0 || get_varint(r, &tail) < 0 || get_size(r, &middle, 1) < 0) {
        return NULL;
    }
    const char *prev = r->prev != NULL ? PyUnicode_AsUTF8AndSize(r->prev, &prev_size) : NULL;
    if (prev == NULL || head > (unsigned long long)prev_size
            || tail > (unsigned long long)prev_size - head) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a spool chunk holds a bad edit");
        return NULL;
    }
    char *text = PyMem_Malloc(head + middle + tail + 1);
    if (text == NULL) return PyErr_NoMemory();
    memcpy(text, prev, head);
    memcpy(text + head, r->at, middle);
    memcpy(text + head + middle, prev + prev_size - tail, tail);
    r->at += middle;
    PyObject *s = new_string(r, text, head + middle + tail);
    PyMem_Free(text);
    return s;
}

static PyObject *
codec_get_value(Reader *r, int tag)
{
    Py_ssize_t n;
    switch (tag) {
    case TAG_NONE: return Py_NewRef(Py_None);
    case TAG_FALSE: return Py_NewRef(Py_False);
    case TAG_TRUE: return Py_NewRef(Py_True);
    case TAG_INT: {
        unsigned long long zigzag;
        if (get_varint(r, &zigzag) < 0) return NULL;
        return PyLong_FromLongLong((long long)(zigzag >> 1) ^ -(long long)(zigzag & 1));
    }
    case TAG_FLOAT: {
        double d;
        if (r->end - r->at < (Py_ssize_t)sizeof d) return truncated(), NULL;
        memcpy(&d, r->at, sizeof d);
        r->at += sizeof d;
        Py_XSETREF(r->last, PyFloat_FromDouble(d));
        return Py_XNewRef(r->last);
    }
    case TAG_FLOAT_AGAIN:
        if (r->last == NULL) return truncated(), NULL;
        return Py_NewRef(r->last);
    case TAG_FLOAT_STEP: {
        unsigned long long step;
        if (r->last == NULL) return truncated(), NULL;
        if (get_varint(r, &step) < 0) return NULL;
        Py_SETREF(r->last, PyFloat_FromDouble(PyFloat_AS_DOUBLE(r->last) + (double)step));
        return Py_XNewRef(r->last);
    }
    case TAG_STR_NEW:
        if (get_size(r, &n, 1) < 0) return NULL;
        r->at += n;
        return new_string(r, (const char *)r->at - n, n);
    case TAG_STR_EDIT:
        return edited_string(r);
    case TAG_STR_REF: {
        unsigned long long number;
        if (get_varint(r, &number) < 0) return NULL;
        if (number >= (unsigned long long)PyList_GET_SIZE(r->strings)) return truncated(), NULL;
        return Py_NewRef(PyList_GET_ITEM(r->strings, (Py_ssize_t)number));
    }
    case TAG_BYTES:
        if (get_size(r, &n, 1) < 0) return NULL;
        r->at += n;
        return PyBytes_FromStringAndSize((const char *)r->at - n, n);
    case TAG_TUPLE:
    case TAG_LIST: {
        if (get_size(r, &n, 1) < 0) return NULL;
        PyObject *seq = tag == TAG_TUPLE ? PyTuple_New(n) : PyList_New(n);
        for (Py_ssize_t i = 0; seq != NULL && i < n; i++) {
            PyObject *item = get_value(r);
            if (item == NULL) Py_CLEAR(seq);
            else if (tag == TAG_TUPLE) PyTuple_SET_ITEM(seq, i, item);
            else PyList_SET_ITEM(seq, i, item);
        }
        return seq;
    }
    case TAG_DICT: {
        if (get_size(r, &n, 2) < 0) return NULL;
        PyObject *d = PyDict_New();
        for (Py_ssize_t i = 0; d != NULL && i < n; i++) {
            PyObject *k = get_value(r), *v = k != NULL ? get_value(r) : NULL;
            if (v == NULL || PyDict_SetItem(d, k, v) < 0) Py_CLEAR(d);
            Py_XDECREF(k);
            Py_XDECREF(v);
        }
        return d;
    }
    case TAG_MARSHAL: {
        if (get_size(r, &n, 1) < 0) return NULL;
        r->at += n;
        return PyMarshal_ReadObjectFromString((const char *)r->at - n, n);
    }
    }
    PyErr_Format(PyExc_ValueError, "a spool chunk holds an unknown tag %d", tag);
    return NULL;
}

static PyObject *
get_value(Reader *r)
{
    if (r->at >= r->end) return truncated(), NULL;
    return codec_get_value(r, *r->at++);
}

static PyObject *
codec_unpack(PyObject *module, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {view.buf, (const unsigned char *)view.buf + view.len, PyList_New(0), NULL, NULL};
    PyObject *value = r.strings != NULL ? get_value(&r) : NULL;
    if (value != NULL && r.at != r.end) {
        Py_CLEAR(value);
        PyErr_SetString(PyExc_ValueError, "a spool chunk has bytes after its value");
    }
    Py_XDECREF(r.strings);
    Py_XDECREF(r.last);
    PyBuffer_Release(&view);
    return value;
}


/* -- the digest's encoding ---------------------------------------------------------------
 *
 * `packed(rows, slow)`: the concatenated msgpack encodings of `[round(t, 6), node,
 * process, kind, fields]` for `rows` (an iterable of 5-tuples), byte for byte what
 * `msgpack.Packer(use_bin_type=True)` writes (the smallest int and length forms, floats
 * as float 64, str as UTF-8 str, bytes as bin). A row with anything else (a field value
 * that is not None, a bool, an int of 64 bits, a float, a str or bytes; a key that is not
 * a str; a string that is not valid UTF-8) is encoded by `slow([row])`, trace.py's
 * `_packed`, which is the Python twin of this function.
 */

static PyObject *round_fn;  /* builtins.round */
static PyObject *six;       /* 6: the digits of a time */

static int
mp_header(Writer *w, unsigned char fix, unsigned fix_limit, unsigned char tag16,
          unsigned char tag32, size_t n)
{
    if (n < fix_limit) return put_byte(w, (unsigned char)(fix | n));
    if (n < 0x10000) {
        unsigned char head[3] = {tag16, (unsigned char)(n >> 8), (unsigned char)n};
        return put_raw(w, head, 3);
    }
    unsigned char head[5] = {tag32, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n};
    return put_raw(w, head, 5);
}

static int
mp_be(Writer *w, unsigned char tag, unsigned long long n, int size)
{
    unsigned char out[9];
    out[0] = tag;
    for (int i = 0; i < size; i++) out[1 + i] = (unsigned char)(n >> (8 * (size - 1 - i)));
    return put_raw(w, out, 1 + size);
}

static int
mp_int(Writer *w, long long n)
{
    if (n < -(1LL << 5)) {
        if (n < -(1LL << 15)) {
            return n < -(1LL << 31) ? mp_be(w, 0xd3, (unsigned long long)n, 8)
                                    : mp_be(w, 0xd2, (unsigned long long)n, 4);
        }
        return n < -(1LL << 7) ? mp_be(w, 0xd1, (unsigned long long)n, 2)
                               : mp_be(w, 0xd0, (unsigned long long)n, 1);
    }
    if (n < (1LL << 7)) return put_byte(w, (unsigned char)n);
    if (n < (1LL << 16)) return n < (1LL << 8) ? mp_be(w, 0xcc, n, 1) : mp_be(w, 0xcd, n, 2);
    return n < (1LL << 32) ? mp_be(w, 0xce, n, 4) : mp_be(w, 0xcf, n, 8);
}

/* One simple value: 1 written, 0 not a simple value (nothing useful written), -1 error. */
static int
mp_value(Writer *w, PyObject *v)
{
    if (v == Py_None) return put_byte(w, 0xc0) < 0 ? -1 : 1;
    if (v == Py_False) return put_byte(w, 0xc2) < 0 ? -1 : 1;
    if (v == Py_True) return put_byte(w, 0xc3) < 0 ? -1 : 1;
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(v, &size);
        if (text == NULL) {
            PyErr_Clear();
            return 0;
        }
        int rc = size < 32 ? put_byte(w, (unsigned char)(0xa0 | size))
            : size < 0x100 ? mp_be(w, 0xd9, size, 1) : mp_header(w, 0, 0, 0xda, 0xdb, size);
        return rc < 0 || put_raw(w, text, size) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred()) return -1;
        if (overflow > 0) {  /* up to 2**64 - 1: uint 64 */
            unsigned long long u = PyLong_AsUnsignedLongLong(v);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            return mp_be(w, 0xcf, u, 8) < 0 ? -1 : 1;
        }
        if (overflow) return 0;
        return mp_int(w, n) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        unsigned long long bits;
        memcpy(&bits, &d, sizeof bits);
        return mp_be(w, 0xcb, bits, 8) < 0 ? -1 : 1;
    }
    if (PyBytes_CheckExact(v)) {
        Py_ssize_t size = PyBytes_GET_SIZE(v);
        int rc = size < 0x100 ? mp_be(w, 0xc4, size, 1) : mp_header(w, 0, 0, 0xc5, 0xc6, size);
        return rc < 0 || put_raw(w, PyBytes_AS_STRING(v), size) < 0 ? -1 : 1;
    }
    return 0;
}

/* round(t, 6) for a finite float well inside 2**52 microseconds whose exact product by
 * 10**6 is not within 1e-7 of a tie (1, *out set), else 0: then builtins.round runs.
 * Python's round is the double nearest to N / 10**6, N the integer nearest to the exact
 * t * 10**6: fma gives that product exactly as p + e, N follows from the fraction (away
 * from a tie, the rounding of the sum cannot change it), and an IEEE division of two
 * exact operands is correctly rounded, so N / 1e6 is that double; a zero keeps t's sign
 * (round(-1e-9, 6) is -0.0). About ten times faster than the decimal conversion of
 * Python's round, which dominated the encoding. */
static int
round6(double t, double *out)
{
    if (!isfinite(t) || fabs(t) >= 4e9) return 0;
    double p = t * 1e6, e = fma(t, 1e6, -p), f = floor(p);
    double frac = (p - f) + e;
    if (fabs(frac - 0.5) < 1e-7) return 0;
    double n = frac < 0.5 ? f : f + 1;
    *out = n == 0 ? copysign(0.0, t) : n / 1e6;
    return 1;
}

/* One row: 1 written, 0 not simple, -1 error. */
static int
mp_row(Writer *w, PyObject *row)
{
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 5
            || !PyDict_CheckExact(PyTuple_GET_ITEM(row, 4))) {
        return 0;
    }
    PyObject *fields = PyTuple_GET_ITEM(row, 4);
    PyObject *time = PyTuple_GET_ITEM(row, 0), *t;
    double rounded;
    if (PyFloat_CheckExact(time) && round6(PyFloat_AS_DOUBLE(time), &rounded)) {
        t = PyFloat_FromDouble(rounded);
    }
    else {
        PyObject *round_args[] = {time, six};
        t = PyObject_Vectorcall(round_fn, round_args, 2, NULL);
    }
    if (t == NULL) return -1;
    int rc = put_byte(w, 0x95) < 0 ? -1 : mp_value(w, t);
    Py_DECREF(t);
    for (int i = 1; i < 4 && rc > 0; i++) rc = mp_value(w, PyTuple_GET_ITEM(row, i));
    if (rc <= 0) return rc;
    if (mp_header(w, 0x80, 16, 0xde, 0xdf, PyDict_GET_SIZE(fields)) < 0) return -1;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (rc > 0 && PyDict_Next(fields, &pos, &k, &v)) {
        rc = PyUnicode_CheckExact(k) ? mp_value(w, k) : 0;
        if (rc > 0) rc = mp_value(w, v);
    }
    return rc;
}

static PyObject *
codec_packed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "packed(rows, slow) takes 2 arguments");
        return NULL;
    }
    PyObject *rows = PyObject_GetIter(args[0]), *slow = args[1], *row, *out = NULL;
    if (rows == NULL) return NULL;
    Writer w = {0};
    while ((row = PyIter_Next(rows)) != NULL) {
        size_t start = w.len;
        int rc = mp_row(&w, row);
        if (rc == 0) {  /* not simple: trace.py encodes it */
            w.len = start;
            PyObject *one = PyList_New(1), *data = NULL;
            if (one != NULL) {
                PyList_SET_ITEM(one, 0, Py_NewRef(row));
                data = PyObject_CallOneArg(slow, one);
                Py_DECREF(one);
            }
            if (data != NULL && !PyBytes_Check(data)) {
                PyErr_SetString(PyExc_TypeError, "packed: slow() must return bytes");
                Py_CLEAR(data);
            }
            rc = data == NULL ? -1
                : put_raw(&w, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
            Py_XDECREF(data);
        }
        Py_DECREF(row);
        if (rc < 0) goto out;
    }
    if (!PyErr_Occurred()) out = PyBytes_FromStringAndSize(w.buf, w.len);
out:
    Py_DECREF(rows);
    PyMem_Free(w.buf);
    PyMem_Free(w.keys);
    PyMem_Free(w.numbers);
    return out;
}

/* `counts[kind] += n` (0, or -1 on error). */
static int
add_count(PyObject *counts, PyObject *kind, Py_ssize_t n)
{
    PyObject *seen = PyDict_GetItemWithError(counts, kind);
    if (seen == NULL && PyErr_Occurred()) return -1;
    PyObject *count = PyLong_FromSsize_t(n + (seen != NULL ? PyLong_AsSsize_t(seen) : 0));
    int rc = count == NULL ? -1 : PyDict_SetItem(counts, kind, count);
    Py_XDECREF(count);
    return rc;
}

/* Distinct kinds a chunk's count tells apart by identity (a chunk holds a few). */
#define KINDS_SEEN 64

/* `count_kinds(rows)`: {kind: rows of that kind}, kinds in the order they first come
 * (a spilled chunk's index entry); the twin of trace.py's `Counter(map(itemgetter(3),
 * rows))`. The recurring kinds are the same string objects: counted by pointer, then
 * added to the dict once each (equal kinds that are different objects add up there). */
static PyObject *
count_kinds(PyObject *module, PyObject *rows)
{
    if (!PyList_CheckExact(rows)) {
        PyErr_SetString(PyExc_TypeError, "count_kinds: rows must be a list");
        return NULL;
    }
    PyObject *kinds[KINDS_SEEN];
    Py_ssize_t tally[KINDS_SEEN], seen = 0, last = 0, i = 0;
    for (; i < PyList_GET_SIZE(rows); i++) {  /* no Python code runs in this loop */
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) < 4) break;
        PyObject *kind = PyTuple_GET_ITEM(row, 3);
        if (seen == 0 || kinds[last] != kind) {
            for (last = 0; last < seen && kinds[last] != kind; last++) {}
            if (last == seen) {
                if (seen == KINDS_SEEN) break;
                kinds[seen] = Py_NewRef(kind);
                tally[seen++] = 0;
            }
        }
        tally[last]++;
    }
    PyObject *counts = PyDict_New();
    for (Py_ssize_t k = 0; k < seen; k++) {
        if (counts != NULL && add_count(counts, kinds[k], tally[k]) < 0) Py_CLEAR(counts);
        Py_DECREF(kinds[k]);
    }
    /* the rest (after a row that is not a tuple, or past KINDS_SEEN kinds): one by one */
    for (; counts != NULL && i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i));
        PyObject *kind = PySequence_GetItem(row, 3);
        if (kind == NULL || add_count(counts, kind, 1) < 0) Py_CLEAR(counts);
        Py_XDECREF(kind);
        Py_DECREF(row);
    }
    return counts;
}

static PyMethodDef module_methods[] = {
    {"count_kinds", count_kinds, METH_O,
     "count_kinds(rows) -> {kind: count}: a chunk's index entry (see _ctrace.c)."},
    {"pack", codec_pack, METH_O, "pack(value) -> bytes: a spool chunk (see _ctrace.c)."},
    {"unpack", codec_unpack, METH_O, "unpack(data) -> the value pack() wrote."},
    {"packed", (PyCFunction)(void (*)(void))codec_packed, METH_FASTCALL,
     "packed(rows, slow) -> bytes: the rows' msgpack encodings (see _ctrace.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ctrace",
    "Optional C accelerator for simuwsgi's trace records (see _ctrace.c).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__ctrace(void)
{
    str_spill = PyUnicode_InternFromString("spill");
    str_startswith = PyUnicode_InternFromString("startswith");
    round_fn = import_attr("builtins", "round");
    six = PyLong_FromLong(6);
    if (!str_spill || !str_startswith || !round_fn || !six || PyType_Ready(&SpoolCoreType) < 0
            || PyType_Ready(&TraceCoreType) < 0) {
        return NULL;
    }
    static const char *const names[] = {"SpoolCore", "TraceCore"};
    static PyTypeObject *const types[] = {&SpoolCoreType, &TraceCoreType};
    return module_with_types(&module, names, types, 2);
}
