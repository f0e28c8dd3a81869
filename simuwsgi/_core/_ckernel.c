/*
 * Optional C accelerator for the kernel's event loop (simuwsgi/_core/kernel.py).
 *
 * What it models: nothing of uWSGI. It is the inner loop of Kernel.run_until, the
 * loop every simulation spends its life in: pop the earliest entry of the event heap
 * (a list [time, priority, sequence, fn, args], ordered by heapq as lists compare),
 * skip it if it was cancelled (fn is None), move the clock, run fn(*args), and stop
 * when the kernel's ``stopping`` flag or the caller's ``stop()`` says so.
 *
 *   run_events(kernel, heap, when, stop, resume) -> bool
 *       exactly what kernel._run_events (its pure-Python twin) does, step for step:
 *       the same heap operations (heapq's own heappop), the same attribute writes
 *       (kernel.now before each event, kernel._may_hand_over around a resume, the
 *       events counted into kernel.events_run when it returns, also on an error),
 *       the same return value (True: stopped by ``stopping`` or ``stop()``).
 *
 * Nothing else is done here, so the Python code stays the one description of what
 * the loop means; the simulator runs the Python twin when this module is not built or
 * when SIMUWSGI_PURE_PYTHON is set, and the tests compare both on the same runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *heappop;          /* _heapq.heappop */
static PyObject *str_now, *str_stopping, *str_may_hand_over, *str_events_run;

/* kernel.events_run += count, keeping any exception being raised. */
static int
add_events(PyObject *kernel, Py_ssize_t count)
{
    PyObject *type, *value, *tb;
    int failed = 0;
    if (count == 0) {
        return 0;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyObject *old = PyObject_GetAttr(kernel, str_events_run);
    PyObject *inc = old ? PyLong_FromSsize_t(count) : NULL;
    PyObject *sum = inc ? PyNumber_Add(old, inc) : NULL;
    if (sum == NULL || PyObject_SetAttr(kernel, str_events_run, sum) < 0) {
        failed = 1;
    }
    Py_XDECREF(old);
    Py_XDECREF(inc);
    Py_XDECREF(sum);
    if (type != NULL) {  /* the loop's own error wins over ours */
        if (failed) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, tb);
        return -1;
    }
    return failed ? -1 : 0;
}

/* fn(*args) of one heap entry; a resume runs with kernel._may_hand_over set. */
static PyObject *
run_one(PyObject *kernel, PyObject *fn, PyObject *args, PyObject *resume)
{
    PyObject *tuple = PyTuple_Check(args) ? Py_NewRef(args) : PySequence_Tuple(args);
    if (tuple == NULL) {
        return NULL;
    }
    if (fn != resume) {
        PyObject *result = PyObject_Call(fn, tuple, NULL);
        Py_DECREF(tuple);
        return result;
    }
    if (PyObject_SetAttr(kernel, str_may_hand_over, Py_True) < 0) {
        Py_DECREF(tuple);
        return NULL;
    }
    PyObject *result = PyObject_Call(fn, tuple, NULL);
    Py_DECREF(tuple);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);  /* the finally: clear the flag, keep the error */
    int failed = PyObject_SetAttr(kernel, str_may_hand_over, Py_False) < 0;
    if (type != NULL) {
        if (failed) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    if (failed) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* True when the loop must stop after an event: kernel.stopping, or stop(). */
static int
must_stop(PyObject *kernel, PyObject *stop)
{
    PyObject *flag = PyObject_GetAttr(kernel, str_stopping);
    if (flag == NULL) {
        return -1;
    }
    int stopping = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (stopping != 0 || stop == Py_None) {
        return stopping;
    }
    PyObject *answer = PyObject_CallNoArgs(stop);
    if (answer == NULL) {
        return -1;
    }
    int yes = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return yes;
}

static PyObject *
run_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "run_events(kernel, heap, when, stop, resume)");
        return NULL;
    }
    PyObject *kernel = args[0], *heap = args[1], *when = args[2];
    PyObject *stop = args[3], *resume = args[4];
    if (!PyList_Check(heap)) {
        PyErr_SetString(PyExc_TypeError, "the event heap must be a list");
        return NULL;
    }
    Py_ssize_t count = 0;
    PyObject *answer = Py_False;
    for (;;) {
        /* while heap and heap[0][0] <= when */
        if (PyList_GET_SIZE(heap) == 0) {
            break;
        }
        PyObject *top = PyList_GET_ITEM(heap, 0);
        if (!PyList_Check(top) || PyList_GET_SIZE(top) != 5) {
            PyErr_SetString(PyExc_TypeError, "an event must be a 5-item list");
            goto error;
        }
        int due = PyObject_RichCompareBool(PyList_GET_ITEM(top, 0), when, Py_LE);
        if (due < 0) {
            goto error;
        }
        if (!due) {
            break;
        }
        PyObject *entry = PyObject_CallOneArg(heappop, heap);
        if (entry == NULL) {
            goto error;
        }
        /* heappop returned the entry compared above (nothing ran in between) */
        PyObject *t = PyList_GET_ITEM(entry, 0);
        PyObject *fn = PyList_GET_ITEM(entry, 3);
        if (fn == Py_None) {
            Py_DECREF(entry);
            continue;
        }
        if (PyObject_SetAttr(kernel, str_now, t) < 0) {
            Py_DECREF(entry);
            goto error;
        }
        count++;
        Py_INCREF(fn);
        PyObject *fn_args = Py_NewRef(PyList_GET_ITEM(entry, 4));
        Py_DECREF(entry);
        PyObject *result = run_one(kernel, fn, fn_args, resume);
        Py_DECREF(fn);
        Py_DECREF(fn_args);
        if (result == NULL) {
            goto error;
        }
        Py_DECREF(result);
        int stopped = must_stop(kernel, stop);
        if (stopped < 0) {
            goto error;
        }
        if (stopped) {
            if (PyObject_SetAttr(kernel, str_stopping, Py_False) < 0) {
                goto error;
            }
            answer = Py_True;
            break;
        }
    }
    if (add_events(kernel, count) < 0) {
        return NULL;
    }
    return Py_NewRef(answer);
error:
    add_events(kernel, count);
    return NULL;
}

static PyMethodDef methods[] = {
    {"run_events", (PyCFunction)(void (*)(void))run_events, METH_FASTCALL,
     "run_events(kernel, heap, when, stop, resume) -> bool: Kernel._run_events in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ckernel",
    "Optional C accelerator for simuwsgi's kernel loop (see _ckernel.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__ckernel(void)
{
    PyObject *heapq = PyImport_ImportModule("_heapq");
    if (heapq == NULL) {
        return NULL;
    }
    heappop = PyObject_GetAttrString(heapq, "heappop");
    Py_DECREF(heapq);
    if (heappop == NULL) {
        return NULL;
    }
    str_now = PyUnicode_InternFromString("now");
    str_stopping = PyUnicode_InternFromString("stopping");
    str_may_hand_over = PyUnicode_InternFromString("_may_hand_over");
    str_events_run = PyUnicode_InternFromString("events_run");
    if (!str_now || !str_stopping || !str_may_hand_over || !str_events_run) {
        return NULL;
    }
    return PyModule_Create(&module);
}
