/*
 * Optional C accelerator for the kernel (simuwsgi/_core/kernel.py).
 *
 * What it models: nothing of uWSGI. It holds the state the kernel touches on every
 * event and runs the kernel's hottest methods without a Python frame:
 *
 *   KernelCore: the C base of kernel._CKernel. Its fields are the kernel attributes
 *       of the same names (now, current, hub, _heap, _seq, _resume, _until, _stop,
 *       _may_hand_over, stopping, _installed_context, _cwd, _domain, events_run,
 *       parks), and its methods _run_events, sleep, park, resume, _hand_over,
 *       _enter, post, post_at, call_soon and wake are the Python methods of
 *       kernel.Kernel (their twins), step for step: the same heap operations (heapq's
 *       algorithm; events compare as their lists do), the same sequence numbers (drawn
 *       from the kernel's own itertools.count), the same clock moves and counts, the
 *       same hand-over from process to process. What the kernel calls out to (a
 *       directory, node or globals swap, pending interrupts, a stop predicate) is
 *       the same Python code on both.
 *   ProcessCore: the C base of kernel.Process, holding the fields the kernel reads on
 *       a switch (alive, greenlet, context, cwd, domain, pending, wait_reason).
 *
 * Nothing a program can see differs, but two things are done more cheaply: a spent
 * event's list (and a wake-up's tuple) that nothing else holds is refilled for the
 * next event instead of a new one, and events made for the same instant share one
 * float.
 *
 * The Python code stays the one description of what the kernel means: the simulator
 * runs it alone when this module is not built or when SIMUWSGI_PURE_PYTHON is set,
 * and tests/test_kernel.py runs every kernel test on both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#if PY_VERSION_HEX < 0x030B0000
#include "longintrepr.h"
#endif

#include "_cutil.h"

static PyObject *str_park, *str_hand_over, *str_run_pending, *str_sleep, *str_empty;
static PyObject *str_apply_cwd, *str_switch_domain, *str_context_hook;
static PyObject *normal;            /* the default priority, kernel.NORMAL (1) */
static PyObject *zero;              /* 0, what a delay is compared with */
static PyObject *none_args;         /* (None,) */

/* greenlet's C API (greenlet/greenlet.h: the capsule "greenlet._C_API", an array of
 * pointers; entry 6 is PyGreenlet_Switch): switching without looking up the method. */
#define GREENLET_SWITCH_NUM 6
typedef PyObject *(*greenlet_switch_fn)(PyObject *g, PyObject *args, PyObject *kwargs);
static greenlet_switch_fn greenlet_switch;

/* -- processes ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *alive, *greenlet, *context, *cwd, *domain, *pending, *wait_reason;
} ProcessCore;

static PyTypeObject ProcessCoreType;

#define PROC_FIELDS(X) X(alive) X(greenlet) X(context) X(cwd) X(domain) X(pending) \
    X(wait_reason)

static int
process_traverse(ProcessCore *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    PROC_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
process_clear(ProcessCore *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    PROC_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
process_dealloc(ProcessCore *self)
{
    PyObject_GC_UnTrack(self);
    process_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef process_members[] = {
#define MEMBER(f) {#f, T_OBJECT_EX, offsetof(ProcessCore, f), 0, NULL},
    PROC_FIELDS(MEMBER)
#undef MEMBER
    {NULL},
};

static PyTypeObject ProcessCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi._core._ckernel.ProcessCore",
    .tp_doc = "The fields of a virtual process the kernel reads on every switch.",
    .tp_basicsize = sizeof(ProcessCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)process_dealloc,
    .tp_traverse = (traverseproc)process_traverse,
    .tp_clear = (inquiry)process_clear,
    .tp_members = process_members,
};

/* A field of a process: from the struct when it is one of ours (new reference). */
#define PROC_GET(p, f, name) \
    (PyObject_TypeCheck((p), &ProcessCoreType) \
     ? (((ProcessCore *)(p))->f ? Py_NewRef(((ProcessCore *)(p))->f) \
        : PyObject_GetAttrString((p), name)) \
     : PyObject_GetAttrString((p), name))

static int
set_wait_reason(PyObject *proc, PyObject *reason)
{
    if (PyObject_TypeCheck(proc, &ProcessCoreType)) {
        Py_XSETREF(((ProcessCore *)proc)->wait_reason, Py_NewRef(reason));
        return 0;
    }
    return PyObject_SetAttrString(proc, "wait_reason", reason);
}

/* proc.alive, and with ``started`` proc.greenlet too, as a truth value (-1: error). */
static int
runnable(PyObject *proc, int started)
{
    PyObject *alive = PROC_GET(proc, alive, "alive");
    int yes = alive ? PyObject_IsTrue(alive) : -1;
    Py_XDECREF(alive);
    if (yes > 0 && started) {
        PyObject *g = PROC_GET(proc, greenlet, "greenlet");
        yes = g ? PyObject_IsTrue(g) : -1;
        Py_XDECREF(g);
    }
    return yes;
}

/* -- the event heap ---------------------------------------------------------------- */

/* The value of an exact int that fits one digit (1), or 0: the sequence numbers of
 * events, compared on every sift, without a call. */
static inline int
small_int(PyObject *v, long long *out)
{
    if (!PyLong_CheckExact(v)) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (_PyLong_IsCompact((PyLongObject *)v)) {
        *out = _PyLong_CompactValue((PyLongObject *)v);
        return 1;
    }
#else
    Py_ssize_t size = Py_SIZE(v);
    if (size == 0 || size == 1) {
        *out = size ? (long long)((PyLongObject *)v)->ob_digit[0] : 0;
        return 1;
    }
#endif
    return 0;
}

/* a < b for two events [time, priority, sequence, fn, args]: what comparing the lists
 * gives, taking the common case (float times, the same priority object, int sequences)
 * without calling back into Python. */
static int
event_lt(PyObject *a, PyObject *b)
{
    if (PyList_CheckExact(a) && PyList_CheckExact(b) && PyList_GET_SIZE(a) >= 3
            && PyList_GET_SIZE(b) >= 3) {
        PyObject *ta = PyList_GET_ITEM(a, 0), *tb = PyList_GET_ITEM(b, 0);
        int same = ta == tb;  /* identical items compare equal, as in a list */
        if (!same && PyFloat_CheckExact(ta) && PyFloat_CheckExact(tb)) {
            double x = PyFloat_AS_DOUBLE(ta), y = PyFloat_AS_DOUBLE(tb);
            if (x < y) {
                return 1;
            }
            if (x > y) {
                return 0;
            }
            same = x == y;
        }
        if (same) {
            PyObject *sa = PyList_GET_ITEM(a, 2), *sb = PyList_GET_ITEM(b, 2);
            long long va, vb;
            if (PyList_GET_ITEM(a, 1) == PyList_GET_ITEM(b, 1)
                    && small_int(sa, &va) && small_int(sb, &vb) && va != vb) {
                return va < vb;
            }
        }
    }
    return PyObject_RichCompareBool(a, b, Py_LT);
}

/* heapq's _siftdown and _siftup (Modules/_heapqmodule.c), with event_lt. */
static int
siftdown(PyObject *heap, Py_ssize_t startpos, Py_ssize_t pos)
{
    Py_ssize_t size = PyList_GET_SIZE(heap);
    PyObject **arr = ((PyListObject *)heap)->ob_item;
    PyObject *newitem = arr[pos];
    while (pos > startpos) {
        Py_ssize_t parentpos = (pos - 1) >> 1;
        PyObject *parent = arr[parentpos];
        Py_INCREF(newitem);
        Py_INCREF(parent);
        int lt = event_lt(newitem, parent);
        Py_DECREF(parent);
        Py_DECREF(newitem);
        if (lt < 0) {
            return -1;
        }
        if (size != PyList_GET_SIZE(heap)) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
            return -1;
        }
        if (lt == 0) {
            break;
        }
        arr = ((PyListObject *)heap)->ob_item;
        parent = arr[parentpos];
        newitem = arr[pos];
        arr[parentpos] = newitem;
        arr[pos] = parent;
        pos = parentpos;
    }
    return 0;
}

static int
siftup(PyObject *heap, Py_ssize_t pos)
{
    Py_ssize_t endpos = PyList_GET_SIZE(heap), startpos = pos;
    Py_ssize_t limit = endpos >> 1;
    PyObject **arr = ((PyListObject *)heap)->ob_item;
    while (pos < limit) {
        Py_ssize_t childpos = 2 * pos + 1;
        if (childpos + 1 < endpos) {
            PyObject *a = arr[childpos], *b = arr[childpos + 1];
            Py_INCREF(a);
            Py_INCREF(b);
            int lt = event_lt(a, b);
            Py_DECREF(a);
            Py_DECREF(b);
            if (lt < 0) {
                return -1;
            }
            childpos += ((unsigned)lt ^ 1);
            arr = ((PyListObject *)heap)->ob_item;
            if (endpos != PyList_GET_SIZE(heap)) {
                PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
                return -1;
            }
        }
        PyObject *tmp1 = arr[childpos], *tmp2 = arr[pos];
        arr[childpos] = tmp2;
        arr[pos] = tmp1;
        pos = childpos;
    }
    return siftdown(heap, startpos, pos);
}

static int
heap_push(PyObject *heap, PyObject *item)
{
    if (PyList_Append(heap, item) < 0) {
        return -1;
    }
    return siftdown(heap, 0, PyList_GET_SIZE(heap) - 1);
}

/* heapq.heappop (new reference). */
static PyObject *
heap_pop(PyObject *heap)
{
    Py_ssize_t n = PyList_GET_SIZE(heap);
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    PyObject *lastelt = Py_NewRef(PyList_GET_ITEM(heap, n - 1));
    if (PyList_SetSlice(heap, n - 1, n, NULL) < 0) {
        Py_DECREF(lastelt);
        return NULL;
    }
    if (n - 1 == 0) {
        return lastelt;
    }
    PyObject *returnitem = PyList_GET_ITEM(heap, 0);
    PyList_SET_ITEM(heap, 0, lastelt);
    if (siftup(heap, 0) < 0) {
        Py_DECREF(returnitem);
        return NULL;
    }
    return returnitem;
}

/* heapq.heappushpop (new reference). */
static PyObject *
heap_pushpop(PyObject *heap, PyObject *item)
{
    if (PyList_GET_SIZE(heap) == 0) {
        return Py_NewRef(item);
    }
    PyObject *top = Py_NewRef(PyList_GET_ITEM(heap, 0));
    int lt = event_lt(top, item);
    Py_DECREF(top);
    if (lt < 0) {
        return NULL;
    }
    if (lt == 0) {
        return Py_NewRef(item);
    }
    if (PyList_GET_SIZE(heap) == 0) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    PyObject *returnitem = PyList_GET_ITEM(heap, 0);
    PyList_SET_ITEM(heap, 0, Py_NewRef(item));
    if (siftup(heap, 0) < 0) {
        Py_DECREF(returnitem);
        return NULL;
    }
    return returnitem;
}

/* An item of an event (borrowed), checking that it is a 5-item list. */
static PyObject *
event_item(PyObject *entry, Py_ssize_t i)
{
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_TypeError, "an event must be a 5-item list");
        return NULL;
    }
    return PyList_GET_ITEM(entry, i);
}

/* a <= b or a > b (op: Py_LE, Py_GT) for two times (1 yes, 0 no, -1 error). */
static int
time_cmp(PyObject *a, PyObject *b, int op)
{
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b)) {
        double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(b);
        return op == Py_LE ? x <= y : x > y;
    }
    return PyObject_RichCompareBool(a, b, op);
}

/* -- the kernel -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *now, *current, *hub, *heap, *seq, *resume, *until, *stop;
    PyObject *may_hand_over, *stopping, *installed_context, *cwd, *domain;
    long long events_run, parks;
    PyObject *spare;  /* a spent event list, to be the next one (see recycle) */
    PyObject *last_when;  /* the float now_plus made last */
} KernelCore;

#define KERNEL_FIELDS(X) X(now) X(current) X(hub) X(heap) X(seq) X(resume) X(until) \
    X(stop) X(may_hand_over) X(stopping) X(installed_context) X(cwd) X(domain) X(spare) \
    X(last_when)

static int
kernel_traverse(KernelCore *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    KERNEL_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
kernel_clear(KernelCore *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    KERNEL_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
kernel_dealloc(KernelCore *self)
{
    PyObject_GC_UnTrack(self);
    kernel_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A field read from C: AttributeError, as Python gives, if it was never set. */
static PyObject *
field(PyObject *value, const char *name)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "kernel attribute '%s' is not set", name);
    }
    return value;
}
#define FIELD(self, f, name) field((self)->f, name)

static int
is_true(PyObject *flag)
{
    return flag == Py_True ? 1 : flag == Py_False || flag == NULL ? 0 : PyObject_IsTrue(flag);
}

static void
set_now(KernelCore *self, PyObject *t)
{
    Py_XSETREF(self->now, Py_NewRef(t));
}

/* next(self._seq) */
static PyObject *
next_seq(KernelCore *self)
{
    PyObject *seq = FIELD(self, seq, "_seq");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *n = PyIter_Next(seq);
    if (n == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "the kernel's sequence ran out");
    }
    return n;
}

/* [when, NORMAL, next(self._seq), fn, args] (steals when and args). */
static PyObject *
new_event(KernelCore *self, PyObject *when, PyObject *fn, PyObject *args)
{
    PyObject *seq = when && args ? next_seq(self) : NULL;
    if (seq == NULL) {
        Py_XDECREF(when);
        Py_XDECREF(args);
        return NULL;
    }
    PyObject *entry = self->spare, *old[5] = {NULL, NULL, NULL, NULL, NULL};
    if (entry != NULL) {  /* refill the spent one; what it held goes at the end */
        self->spare = NULL;
        memcpy(old, ((PyListObject *)entry)->ob_item, sizeof(old));
    }
    else if ((entry = PyList_New(5)) == NULL) {
        Py_DECREF(when);
        Py_DECREF(args);
        Py_DECREF(seq);
        return NULL;
    }
    PyList_SET_ITEM(entry, 0, when);
    PyList_SET_ITEM(entry, 1, Py_NewRef(normal));
    PyList_SET_ITEM(entry, 2, seq);
    PyList_SET_ITEM(entry, 3, Py_NewRef(fn));
    PyList_SET_ITEM(entry, 4, args);
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(old[i]);
    }
    return entry;
}

/* A 2-tuple only its event holds: a wake-up's (process, value), reusable in place. */
static int
own_pair(PyObject *args)
{
    return PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 2 && Py_REFCNT(args) == 1;
}

/* Drop our reference to an event; when it was the last one (no Timer holds it, it is
 * off the heap) keep the list, and the (process, value) tuple of a wake-up, to be the
 * next event: an event is made and one is spent per step, and reusing them saves their
 * allocation and their trips through the GC (as zip() reuses its tuple). */
static void
recycle(KernelCore *self, PyObject *entry)
{
    if (self->spare != NULL || Py_REFCNT(entry) != 1 || !PyList_CheckExact(entry)
            || PyList_GET_SIZE(entry) != 5) {
        Py_DECREF(entry);
        return;
    }
    PyObject *fn = PyList_GET_ITEM(entry, 3), *args = PyList_GET_ITEM(entry, 4);
    PyList_SET_ITEM(entry, 3, Py_NewRef(Py_None));  /* hold no process or callback */
    self->spare = entry;
    Py_DECREF(fn);
    if (own_pair(args)) {
        PyObject *proc = PyTuple_GET_ITEM(args, 0), *value = PyTuple_GET_ITEM(args, 1);
        PyTuple_SET_ITEM(args, 0, Py_NewRef(Py_None));
        PyTuple_SET_ITEM(args, 1, Py_NewRef(Py_None));
        Py_DECREF(proc);
        Py_DECREF(value);
    }
    else {
        PyList_SET_ITEM(entry, 4, Py_NewRef(Py_None));
        Py_DECREF(args);
    }
}

/* (proc, value) for a wake-up: the spare event's tuple when it has one. */
static PyObject *
wakeup_args(KernelCore *self, PyObject *proc, PyObject *value)
{
    PyObject *spare = self->spare;
    if (spare == NULL || !own_pair(PyList_GET_ITEM(spare, 4))) {
        return PyTuple_Pack(2, proc, value);
    }
    PyObject *pair = PyList_GET_ITEM(spare, 4);  /* its reference is ours now */
    PyList_SET_ITEM(spare, 4, Py_NewRef(Py_None));
    PyObject *old0 = PyTuple_GET_ITEM(pair, 0), *old1 = PyTuple_GET_ITEM(pair, 1);
    PyTuple_SET_ITEM(pair, 0, Py_NewRef(proc));
    PyTuple_SET_ITEM(pair, 1, Py_NewRef(value));
    Py_DECREF(old0);
    Py_DECREF(old1);
    if (!PyObject_GC_IsTracked(pair)) {  /* the GC untracks a tuple of atoms */
        PyObject_GC_Track(pair);
    }
    return pair;
}

/* self.now + delay (new reference) */
static PyObject *
now_plus(KernelCore *self, PyObject *delay)
{
    PyObject *now = FIELD(self, now, "now");
    if (now == NULL) {
        return NULL;
    }
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(delay)) {
        /* Events made for the same instant share its float: a sift comparing two of
         * them sees one object, and the float is not made again. */
        double when = PyFloat_AS_DOUBLE(now) + PyFloat_AS_DOUBLE(delay);
        PyObject *last = self->last_when;
        if (last != NULL && memcmp(&when, &((PyFloatObject *)last)->ob_fval,
                                   sizeof(double)) == 0) {
            return Py_NewRef(last);
        }
        PyObject *made = PyFloat_FromDouble(when);
        if (made != NULL) {
            Py_XSETREF(self->last_when, Py_NewRef(made));
        }
        return made;
    }
    return PyNumber_Add(now, delay);
}

static int
push_event(KernelCore *self, PyObject *when, PyObject *fn, PyObject *args)
{
    PyObject *heap = FIELD(self, heap, "_heap");
    PyObject *entry = heap ? new_event(self, when, fn, args) : NULL;
    if (entry == NULL) {
        if (heap == NULL) {
            Py_XDECREF(when);
            Py_XDECREF(args);
        }
        return -1;
    }
    int rc = heap_push(heap, entry);
    Py_DECREF(entry);
    return rc;
}

/* The tuple of args[0:n] (the ``*args`` of a call). */
static PyObject *
tuple_of(PyObject *const *args, Py_ssize_t n)
{
    PyObject *tuple = PyTuple_New(n);
    for (Py_ssize_t i = 0; tuple != NULL && i < n; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    }
    return tuple;
}

/* post(delay, fn, *args) */
static PyObject *
kernel_post(KernelCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "post(delay, fn, *args)");
        return NULL;
    }
    if (push_event(self, now_plus(self, args[0]), args[1],
                   tuple_of(args + 2, nargs - 2)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* post_at(when, fn, *args) */
static PyObject *
kernel_post_at(KernelCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "post_at(when, fn, *args)");
        return NULL;
    }
    if (push_event(self, Py_NewRef(args[0]), args[1],
                   tuple_of(args + 2, nargs - 2)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* call_soon(fn, *args) */
static PyObject *
kernel_call_soon(KernelCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_soon(fn, *args)");
        return NULL;
    }
    PyObject *now = FIELD(self, now, "now");
    if (now == NULL || push_event(self, Py_NewRef(now), args[0],
                                  tuple_of(args + 1, nargs - 1)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Positional and keyword arguments of a FASTCALL method into slots by name. */
static int
parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           const char *const *names, int required, PyObject **out, const char *fname)
{
    int total = 0;
    while (names[total]) {
        total++;
    }
    if (nargs > total) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments", fname, total);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < total && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == total || out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated argument %R",
                         fname, key);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing argument '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

/* wake(proc, value=None, delay=0.0) */
static PyObject *
kernel_wake(KernelCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"proc", "value", "delay", NULL};
    PyObject *a[3] = {NULL, NULL, NULL};
    if (parse_args(args, nargs, kwnames, names, 1, a, "wake") < 0) {
        return NULL;
    }
    PyObject *zero = NULL;
    if (a[2] == NULL) {
        a[2] = zero = PyFloat_FromDouble(0.0);
        if (zero == NULL) {
            return NULL;
        }
    }
    PyObject *resume = FIELD(self, resume, "_resume");
    int rc = resume == NULL ? -1 : push_event(
        self, now_plus(self, a[2]), resume, wakeup_args(self, a[0], a[1] ? a[1] : Py_None));
    Py_XDECREF(zero);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* self._stop is not None and self._stop() (1 yes, 0 no, -1 error). */
static int
stop_requested(PyObject *stop)
{
    if (stop == NULL || stop == Py_None) {
        return 0;
    }
    PyObject *answer = PyObject_CallNoArgs(stop);
    if (answer == NULL) {
        return -1;
    }
    int yes = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return yes;
}

/* fn(*args) of one event run by the loop; a resume runs with _may_hand_over set. */
static PyObject *
run_one(KernelCore *self, PyObject *fn, PyObject *args)
{
    PyObject *tuple = PyTuple_Check(args) ? Py_NewRef(args) : PySequence_Tuple(args);
    if (tuple == NULL) {
        return NULL;
    }
    if (fn != self->resume) {
        PyObject *result = PyObject_Call(fn, tuple, NULL);
        Py_DECREF(tuple);
        return result;
    }
    Py_XSETREF(self->may_hand_over, Py_NewRef(Py_True));
    PyObject *result = PyObject_Call(fn, tuple, NULL);
    Py_DECREF(tuple);
    Py_XSETREF(self->may_hand_over, Py_NewRef(Py_False));  /* the finally */
    return result;
}

/* _run_events(when, stop) -> bool: Kernel._run_events. */
static PyObject *
kernel_run_events(KernelCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_run_events(when, stop)");
        return NULL;
    }
    PyObject *when = args[0], *stop = args[1];
    PyObject *heap = FIELD(self, heap, "_heap");
    if (heap == NULL) {
        return NULL;
    }
    if (!PyList_CheckExact(heap)) {
        PyErr_SetString(PyExc_TypeError, "the event heap must be a list");
        return NULL;
    }
    Py_INCREF(heap);
    long long count = 0;
    PyObject *answer = NULL;
    for (;;) {
        if (PyList_GET_SIZE(heap) == 0) {
            answer = Py_False;
            break;
        }
        PyObject *t = event_item(PyList_GET_ITEM(heap, 0), 0);
        int due = t ? time_cmp(t, when, Py_LE) : -1;
        if (due < 0) {
            break;
        }
        if (!due) {
            answer = Py_False;
            break;
        }
        PyObject *entry = heap_pop(heap);
        if (entry == NULL) {
            break;
        }
        PyObject *fn = PyList_GET_ITEM(entry, 3);
        if (fn == Py_None) {
            recycle(self, entry);
            continue;
        }
        set_now(self, PyList_GET_ITEM(entry, 0));
        count++;
        Py_INCREF(fn);
        PyObject *fn_args = Py_NewRef(PyList_GET_ITEM(entry, 4));
        recycle(self, entry);
        PyObject *result = run_one(self, fn, fn_args);
        Py_DECREF(fn);
        Py_DECREF(fn_args);
        if (result == NULL) {
            break;
        }
        Py_DECREF(result);
        int stopped = is_true(self->stopping);
        if (stopped == 0) {
            stopped = stop_requested(stop);
        }
        if (stopped < 0) {
            break;
        }
        if (stopped) {
            Py_XSETREF(self->stopping, Py_NewRef(Py_False));
            answer = Py_True;
            break;
        }
    }
    Py_DECREF(heap);
    self->events_run += count;  /* the finally: counted also when an event raised */
    return answer ? Py_NewRef(answer) : NULL;
}

/* After a process's switch returned: run what interrupted it (Kernel._run_pending). */
static PyObject *
back_in(KernelCore *self, PyObject *proc, PyObject *switched)
{
    if (switched == NULL) {
        return NULL;
    }
    PyObject *pending = PROC_GET(proc, pending, "pending");
    int any = pending ? PyObject_IsTrue(pending) : -1;
    Py_XDECREF(pending);
    if (any > 0) {
        PyObject *call[2] = {(PyObject *)self, proc};
        PyObject *done = PyObject_VectorcallMethod(
            str_run_pending, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (done == NULL) {
            Py_DECREF(switched);
            return NULL;
        }
        Py_DECREF(done);
    }
    else if (any < 0) {
        Py_DECREF(switched);
        return NULL;
    }
    return switched;
}

/* g.switch(value), or g.switch() when value is NULL */
static PyObject *
switch_to(PyObject *g, PyObject *value)
{
    PyObject *args = value == NULL ? PyTuple_New(0)
        : value == Py_None ? Py_NewRef(none_args)  /* a sleeper's wake-up: made once */
        : PyTuple_Pack(1, value);
    if (args == NULL) {
        return NULL;
    }
    PyObject *result = greenlet_switch(g, args, NULL);
    Py_DECREF(args);
    return result;
}

static PyObject *
simulation_error(const char *message)
{
    PyObject *cls = import_attr("simuwsgi._errors", "SimulationError");
    if (cls != NULL) {
        PyErr_SetString(cls, message);
        Py_DECREF(cls);
    }
    return NULL;
}

/* Kernel._enter: make proc the running process (its directory, node, globals). */
static int
enter(KernelCore *self, PyObject *proc)
{
    PyObject *cwd = PROC_GET(proc, cwd, "cwd");
    int rc = cwd == NULL ? -1 : cwd == self->cwd ? 0
        : call_void((PyObject *)self, str_apply_cwd, cwd, NULL);
    Py_XDECREF(cwd);
    if (rc < 0) {
        return -1;
    }
    PyObject *domain = PROC_GET(proc, domain, "domain");
    rc = domain == NULL ? -1
        : domain == self->domain ? 0
        : call_void((PyObject *)self, str_switch_domain, domain, NULL);
    Py_XDECREF(domain);
    if (rc < 0) {
        return -1;
    }
    PyObject *context = PROC_GET(proc, context, "context");
    if (context == NULL) {
        return -1;
    }
    if (context != self->installed_context) {  /* switch_context, inline */
        PyObject *hook = PyObject_GetAttr((PyObject *)self, str_context_hook);
        PyObject *installed = hook ? FIELD(self, installed_context, "_installed_context")
                                   : NULL;
        PyObject *r = installed == NULL ? NULL : hook == Py_None ? Py_NewRef(Py_None)
            : PyObject_CallFunctionObjArgs(hook, installed, context, NULL);
        Py_XDECREF(hook);
        if (r == NULL) {
            Py_DECREF(context);
            return -1;
        }
        Py_DECREF(r);
        Py_XSETREF(self->installed_context, Py_NewRef(context));
    }
    Py_DECREF(context);
    Py_XSETREF(self->current, Py_NewRef(proc));
    return set_wait_reason(proc, str_empty);
}

static PyObject *
kernel_enter(KernelCore *self, PyObject *proc)
{
    if (enter(self, proc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
killed_class(void)
{
    static PyObject *killed;
    if (killed == NULL) {
        killed = import_attr("simuwsgi._core.kernel", "Killed");
    }
    return killed;
}

/* resume(proc, value=None): Kernel.resume. */
static PyObject *
kernel_resume(KernelCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"proc", "value", NULL};
    PyObject *a[2] = {NULL, NULL};
    if (parse_args(args, nargs, kwnames, names, 1, a, "resume") < 0) {
        return NULL;
    }
    PyObject *proc = a[0], *value = a[1] ? a[1] : Py_None;
    int alive = runnable(proc, 0);
    if (alive <= 0) {
        return alive < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *prev = FIELD(self, current, "current");
    if (prev == NULL) {
        return NULL;
    }
    Py_INCREF(prev);
    Py_INCREF(proc);
    PyObject *g = NULL, *result = NULL;
    if (enter(self, proc) < 0) {  /* before the try: current stays as _enter left it */
        goto out;
    }
    PyObject *killed = killed_class();  /* looked up with no exception pending */
    g = killed ? PROC_GET(proc, greenlet, "greenlet") : NULL;
    result = g ? switch_to(g, value) : NULL;
    if (result == NULL && g != NULL) {
        if (PyErr_ExceptionMatches(killed)) {  /* except Killed */
            PyErr_Clear();
            result = PyObject_SetAttrString(proc, "alive", Py_False) < 0 ? NULL
                : Py_NewRef(Py_None);
        }
    }
    Py_XSETREF(self->current, Py_NewRef(prev));  /* the finally */
    if (result != NULL) {
        Py_SETREF(result, Py_NewRef(Py_None));
    }
out:
    Py_XDECREF(g);
    Py_DECREF(proc);
    Py_DECREF(prev);
    return result;
}

/* _hand_over() -> (process, value) or None: Kernel._hand_over. */
static PyObject *
kernel_hand_over(KernelCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *heap = FIELD(self, heap, "_heap");
    if (heap == NULL) {
        return NULL;
    }
    if (!PyList_CheckExact(heap)) {
        PyErr_SetString(PyExc_TypeError, "the event heap must be a list");
        return NULL;
    }
    int stopping = is_true(self->stopping);
    if (PyList_GET_SIZE(heap) == 0 || stopping) {
        return stopping < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *entry = Py_NewRef(PyList_GET_ITEM(heap, 0)), *result = NULL;
    PyObject *t = event_item(entry, 0);
    PyObject *until = t ? FIELD(self, until, "_until") : NULL;
    if (until == NULL) {
        goto out;
    }
    if (PyList_GET_ITEM(entry, 3) != self->resume) {
        result = Py_NewRef(Py_None);
        goto out;
    }
    int late = time_cmp(t, until, Py_GT);
    if (late) {
        result = late < 0 ? NULL : Py_NewRef(Py_None);
        goto out;
    }
    PyObject *pair = PyList_GET_ITEM(entry, 4);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_ValueError, "a wake-up carries (process, value)");
        goto out;
    }
    PyObject *proc = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
    int go = runnable(proc, 1);
    if (go > 0) {
        go = stop_requested(self->stop);
        go = go < 0 ? -1 : !go;
    }
    if (go <= 0) {
        result = go < 0 ? NULL : Py_NewRef(Py_None);
        goto out;
    }
    result = PyTuple_Pack(2, proc, value);
    PyObject *popped = result ? heap_pop(heap) : NULL;
    if (popped == NULL) {
        Py_CLEAR(result);
        goto out;
    }
    Py_DECREF(popped);
    set_now(self, t);
    self->events_run++;
    if (enter(self, proc) < 0) {
        Py_CLEAR(result);
    }
out:
    recycle(self, entry);
    return result;
}

/* park(reason=""): Kernel.park. */
static PyObject *
kernel_park(KernelCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"reason", NULL};
    PyObject *a[1] = {NULL};
    if (parse_args(args, nargs, kwnames, names, 0, a, "park") < 0) {
        return NULL;
    }
    PyObject *proc = self->current;
    if (proc == NULL || proc == Py_None) {
        return simulation_error(
            "park() called outside a virtual process: blocking calls need one");
    }
    Py_INCREF(proc);
    PyObject *result = NULL;
    if (set_wait_reason(proc, a[0] ? a[0] : str_empty) < 0) {
        goto out;
    }
    self->parks++;
    int hand = is_true(self->may_hand_over);
    if (hand < 0) {
        goto out;
    }
    if (hand) {
        PyObject *call[1] = {(PyObject *)self};
        PyObject *handed = PyObject_VectorcallMethod(
            str_hand_over, call, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (handed == NULL) {
            goto out;
        }
        if (handed != Py_None) {
            PyObject *nxt, *value, *g;
            if (!PyTuple_Check(handed) || PyTuple_GET_SIZE(handed) != 2) {
                PyErr_SetString(PyExc_ValueError, "_hand_over gives (process, value)");
                Py_DECREF(handed);
                goto out;
            }
            nxt = PyTuple_GET_ITEM(handed, 0);
            value = PyTuple_GET_ITEM(handed, 1);
            g = PROC_GET(nxt, greenlet, "greenlet");
            result = g ? back_in(self, proc, switch_to(g, value)) : NULL;
            Py_XDECREF(g);
            Py_DECREF(handed);
            goto out;
        }
        Py_DECREF(handed);
    }
    Py_XSETREF(self->current, Py_NewRef(Py_None));
    PyObject *hub = FIELD(self, hub, "hub");
    result = hub ? back_in(self, proc, switch_to(hub, NULL)) : NULL;
out:
    Py_DECREF(proc);
    return result;
}

/* Hand over from the sleeping process to nxt, whose wake-up ``entry`` came off the
 * heap (Kernel.sleep's inner branch); NULL with no error: nxt cannot run. */
static PyObject *
hand_over(KernelCore *self, PyObject *proc, PyObject *entry, PyObject *reason, int *done)
{
    *done = 0;
    PyObject *pair = PyList_GET_ITEM(entry, 4);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_ValueError, "a wake-up carries (process, value)");
        return NULL;
    }
    PyObject *nxt = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
    if (runnable(nxt, 1) <= 0) {  /* an error is seen by the caller */
        return NULL;
    }
    PyObject *g = PROC_GET(nxt, greenlet, "greenlet");
    if (g == NULL) {
        return NULL;
    }
    Py_INCREF(nxt);
    Py_INCREF(value);
    set_now(self, PyList_GET_ITEM(entry, 0));
    self->events_run++;
    PyObject *result = NULL;
    if (set_wait_reason(proc, reason) < 0) {
        goto out;
    }
    PyObject *context = PROC_GET(nxt, context, "context");
    PyObject *cwd = PROC_GET(nxt, cwd, "cwd");
    PyObject *domain = PROC_GET(nxt, domain, "domain");
    int plain = context && cwd && domain && context == self->installed_context
        && cwd == self->cwd && domain == self->domain;
    int failed = !(context && cwd && domain);
    Py_XDECREF(context);
    Py_XDECREF(cwd);
    Py_XDECREF(domain);
    if (failed) {
        goto out;
    }
    if (plain) {  /* _enter's work when nothing else changes */
        Py_XSETREF(self->current, Py_NewRef(nxt));
        if (set_wait_reason(nxt, str_empty) < 0) {
            goto out;
        }
    }
    else if (enter(self, nxt) < 0) {  /* its directory, node and globals too */
        goto out;
    }
    *done = 1;
    result = back_in(self, proc, switch_to(g, value));
out:
    if (!*done && PyErr_Occurred()) {
        *done = 1;  /* an error: no fall-back either */
    }
    Py_DECREF(g);
    Py_DECREF(nxt);
    Py_DECREF(value);
    return result;
}

/* sleep(delay, reason="sleep"): Kernel.sleep. */
static PyObject *
kernel_sleep(KernelCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"delay", "reason", NULL};
    PyObject *a[2] = {NULL, NULL};
    if (parse_args(args, nargs, kwnames, names, 1, a, "sleep") < 0) {
        return NULL;
    }
    PyObject *delay = a[0], *reason = a[1] ? a[1] : str_sleep;
    PyObject *proc = self->current;
    if (proc == NULL || proc == Py_None) {
        return simulation_error(
            "sleep() called outside a virtual process: blocking calls need one");
    }
    PyObject *heap = FIELD(self, heap, "_heap");
    PyObject *resume = FIELD(self, resume, "_resume");
    PyObject *now = FIELD(self, now, "now");
    if (heap == NULL || resume == NULL || now == NULL) {
        return NULL;
    }
    if (!PyList_CheckExact(heap)) {
        PyErr_SetString(PyExc_TypeError, "the event heap must be a list");
        return NULL;
    }
    int positive = PyFloat_CheckExact(delay) ? PyFloat_AS_DOUBLE(delay) > 0
        : PyObject_RichCompareBool(delay, zero, Py_GT);
    if (positive < 0) {
        return NULL;
    }
    PyObject *when = positive ? now_plus(self, delay) : Py_NewRef(now);
    PyObject *own = new_event(self, when, resume, wakeup_args(self, proc, Py_None));
    if (own == NULL) {
        return NULL;
    }
    Py_INCREF(proc);
    Py_INCREF(heap);
    PyObject *result = NULL, *entry = NULL;
    int hand = is_true(self->may_hand_over);
    int stopping = hand > 0 ? is_true(self->stopping) : 0;
    if (hand < 0 || stopping < 0) {
        goto out;
    }
    if (!hand || stopping) {
        if (heap_push(heap, own) < 0) {
            goto out;
        }
        PyObject *call[2] = {(PyObject *)self, reason};
        result = PyObject_VectorcallMethod(str_park, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL);
        if (result != NULL) {
            Py_SETREF(result, Py_NewRef(Py_None));
        }
        goto out;
    }
    self->parks++;  /* a yield, even when no switch follows (the stall watchdog) */
    entry = heap_pushpop(heap, own);
    if (entry == NULL) {
        goto out;
    }
    PyObject *t = event_item(entry, 0);
    if (t == NULL) {
        goto out;
    }
    PyObject *until = FIELD(self, until, "_until");
    int due = until ? time_cmp(t, until, Py_LE) : -1;
    if (due < 0) {
        goto out;
    }
    if (due) {
        due = !stop_requested(self->stop);
        if (PyErr_Occurred()) {
            goto out;
        }
    }
    if (due) {
        if (entry == own) {
            set_now(self, t);
            self->events_run++;
            result = Py_NewRef(Py_None);
            goto out;
        }
        if (PyList_GET_ITEM(entry, 3) == resume) {
            int done;
            result = hand_over(self, proc, entry, reason, &done);
            if (done || PyErr_Occurred()) {
                if (result != NULL) {
                    Py_SETREF(result, Py_NewRef(Py_None));
                }
                goto out;
            }
        }
    }
    /* not for this process to run: back, same place; wait in the hub */
    if (heap_push(heap, entry) < 0 || set_wait_reason(proc, reason) < 0) {
        goto out;
    }
    Py_XSETREF(self->current, Py_NewRef(Py_None));
    PyObject *hub = FIELD(self, hub, "hub");
    if (hub == NULL) {
        goto out;
    }
    result = back_in(self, proc, switch_to(hub, NULL));
    if (result != NULL) {
        Py_SETREF(result, Py_NewRef(Py_None));
    }
out:
    if (entry != NULL) {
        recycle(self, entry);
    }
    recycle(self, own);
    Py_DECREF(heap);
    Py_DECREF(proc);
    return result;
}

static PyMethodDef kernel_methods[] = {
    {"_run_events", (PyCFunction)(void (*)(void))kernel_run_events, METH_FASTCALL,
     "_run_events(when, stop) -> bool: Kernel._run_events in C."},
    {"sleep", (PyCFunction)(void (*)(void))kernel_sleep, METH_FASTCALL | METH_KEYWORDS,
     "sleep(delay, reason='sleep'): Kernel.sleep in C."},
    {"post", (PyCFunction)(void (*)(void))kernel_post, METH_FASTCALL,
     "post(delay, fn, *args): Kernel.post in C."},
    {"post_at", (PyCFunction)(void (*)(void))kernel_post_at, METH_FASTCALL,
     "post_at(when, fn, *args): Kernel.post_at in C."},
    {"call_soon", (PyCFunction)(void (*)(void))kernel_call_soon, METH_FASTCALL,
     "call_soon(fn, *args): Kernel.call_soon in C."},
    {"wake", (PyCFunction)(void (*)(void))kernel_wake, METH_FASTCALL | METH_KEYWORDS,
     "wake(proc, value=None, delay=0.0): Kernel.wake in C."},
    {"park", (PyCFunction)(void (*)(void))kernel_park, METH_FASTCALL | METH_KEYWORDS,
     "park(reason=''): Kernel.park in C."},
    {"resume", (PyCFunction)(void (*)(void))kernel_resume, METH_FASTCALL | METH_KEYWORDS,
     "resume(proc, value=None): Kernel.resume in C."},
    {"_hand_over", (PyCFunction)kernel_hand_over, METH_NOARGS,
     "_hand_over() -> (process, value) or None: Kernel._hand_over in C."},
    {"_enter", (PyCFunction)kernel_enter, METH_O, "_enter(proc): Kernel._enter in C."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef kernel_members[] = {
    {"now", T_OBJECT_EX, offsetof(KernelCore, now), 0, NULL},
    {"current", T_OBJECT_EX, offsetof(KernelCore, current), 0, NULL},
    {"hub", T_OBJECT_EX, offsetof(KernelCore, hub), 0, NULL},
    {"_heap", T_OBJECT_EX, offsetof(KernelCore, heap), 0, NULL},
    {"_seq", T_OBJECT_EX, offsetof(KernelCore, seq), 0, NULL},
    {"_resume", T_OBJECT_EX, offsetof(KernelCore, resume), 0, NULL},
    {"_until", T_OBJECT_EX, offsetof(KernelCore, until), 0, NULL},
    {"_stop", T_OBJECT_EX, offsetof(KernelCore, stop), 0, NULL},
    {"_may_hand_over", T_OBJECT_EX, offsetof(KernelCore, may_hand_over), 0, NULL},
    {"stopping", T_OBJECT_EX, offsetof(KernelCore, stopping), 0, NULL},
    {"_installed_context", T_OBJECT_EX, offsetof(KernelCore, installed_context), 0, NULL},
    {"_cwd", T_OBJECT_EX, offsetof(KernelCore, cwd), 0, NULL},
    {"_domain", T_OBJECT_EX, offsetof(KernelCore, domain), 0, NULL},
    {"events_run", T_LONGLONG, offsetof(KernelCore, events_run), 0, NULL},
    {"parks", T_LONGLONG, offsetof(KernelCore, parks), 0, NULL},
    {NULL},
};

static PyTypeObject KernelCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi._core._ckernel.KernelCore",
    .tp_doc = "The kernel's per-event state and hottest methods (see _ckernel.c).",
    .tp_basicsize = sizeof(KernelCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_traverse = (traverseproc)kernel_traverse,
    .tp_clear = (inquiry)kernel_clear,
    .tp_methods = kernel_methods,
    .tp_members = kernel_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ckernel",
    "Optional C accelerator for simuwsgi's kernel (see _ckernel.c).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__ckernel(void)
{
    str_park = PyUnicode_InternFromString("park");
    str_hand_over = PyUnicode_InternFromString("_hand_over");
    str_apply_cwd = PyUnicode_InternFromString("apply_cwd");
    str_switch_domain = PyUnicode_InternFromString("switch_domain");
    str_context_hook = PyUnicode_InternFromString("context_hook");
    str_run_pending = PyUnicode_InternFromString("_run_pending");
    str_sleep = PyUnicode_InternFromString("sleep");
    str_empty = PyUnicode_InternFromString("");
    normal = PyLong_FromLong(1);
    zero = PyLong_FromLong(0);
    none_args = PyTuple_Pack(1, Py_None);
    void **greenlet_api = (void **)PyCapsule_Import("greenlet._C_API", 0);
    if (greenlet_api == NULL) {
        return NULL;
    }
    greenlet_switch = (greenlet_switch_fn)greenlet_api[GREENLET_SWITCH_NUM];
    if (!str_empty || !zero || !none_args || !str_park || !str_hand_over || !str_apply_cwd
            || !str_switch_domain || !str_context_hook || !str_run_pending || !str_sleep || !normal
            || PyType_Ready(&ProcessCoreType) < 0 || PyType_Ready(&KernelCoreType) < 0) {
        return NULL;
    }
    static const char *const names[] = {"ProcessCore", "KernelCore"};
    static PyTypeObject *const types[] = {&ProcessCoreType, &KernelCoreType};
    return module_with_types(&module, names, types, 2);
}
