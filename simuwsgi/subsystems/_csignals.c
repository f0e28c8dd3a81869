/*
 * Optional C accelerator for the signal path (simuwsgi.subsystems.signals).
 *
 * A signal's way is `uwsgi.signal(n)` in a process, the master's read of the byte and
 * its routing by the slot-0 entry, the delivery to a worker (idle in accept, or waiting
 * in `uwsgi.signal_wait()`), and the handler run by the receiver. `Signals` builds each
 * step as a Python method or facade function; this module makes builtin functions of
 * their common case, step for step what the Python code does for it, and hands every
 * other call to the Python function (`fallback`, same arguments), which stays the one
 * place where parsing, errors, logging, faults, choices and the other targets live:
 *
 *   signal(state)                   uwsgi.signal(n) with one int, raised by a worker,
 *       mule or spooler with no fault planned: the `signal.raise` record and the
 *       master's read posted (`raise_signal`).
 *   master_read(state)              the master's read (or a timer's firing, `fired`
 *       passed on to `route`): `loop.event(route, n, fired)` with its loop running
 *       (_cmaster.c has the loop's twin), else `route(n, fired)`.
 *   route(state)                    `route`: the `fired` record when given (the
 *       timer's), the `signal.route` record, then a target
 *       in `signals._worker_targets` (`workers`, or `workerN` naming an existing
 *       worker) delivered to each worker as `to_workers` does, or (`''`, `worker`,
 *       `worker0`) with no process in signal_wait, to the idle worker
 *       `take_idle_worker` gives or the shared queue (`_to_shared_workers`); any other
 *       target through `signals._deliver(target, n)`.
 *   run_handler(state)              `run_handler(proc, n, report=True)` for an entry
 *       the receiver may run without harakiri armed: the counters, the
 *       `signal.handler` record, `inst.call_python(handler, n)` (looked up per call:
 *       fork mode replaces it), and `signals._handler_failed` when it fails.
 *   signal_wait(state)              uwsgi.signal_wait() or signal_wait(n) with an int,
 *       in a worker: `wait` (its queues, `waiting`, the park, the handlers).
 *
 * What these save is the Python frames of each step (about a dozen per round trip).
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_core/_cutil.h"
#include "_cfields.h"

/* The slots read at their offsets (see _cfields.h): the kernel's, a table entry's, a
 * process's, the instance's. */
#define FIELDS(X) X(now) X(current) X(target) X(wid) X(handler) X(id) X(name) X(signals) \
    X(in_handler) X(idle) X(acceptor) X(harakiri)
FIELDS(FIELD_DECLARE)

static PyObject *str_add;
static PyObject *str_faults, *str_master_read, *str_call_soon, *str_num;
static PyObject *str_signal_raise, *str_master_loop, *str_started, *str_closed;
static PyObject *str_event, *str_route;
static PyObject *str_target, *str_signal_route, *str_deliver;
static PyObject *str_main, *str_wake, *str_remove, *str_resume, *str_sig;
static PyObject *str_signal_queue, *str_append, *str_signal_handler, *str_call_python;
static PyObject *str_handler_failed, *str_run_handler, *str_request;
static PyObject *str_signal_received, *str_popleft, *str_park;
static PyObject *str_wait_reason, *str_process_types, *str_master, *str_signal;
static PyObject *minus_one, *zero, *one;

/* The process classes (Master, Worker), read once from `signals._process_types`. */
static PyObject *Master, *Worker;

/* The state of every function: a tuple of the objects it works on, which live as long as
 * the instance (`Signals._c_state` builds it). */
#define STATE(self, i) PyTuple_GET_ITEM((self), (i))
#define SIGNALS(self) STATE(self, 0)
#define FALLBACK(self) STATE(self, 1)
#define INST(self) STATE(self, 2)
#define KERNEL(self) STATE(self, 3)
#define TRACE(self) STATE(self, 4)
#define TABLES(self) STATE(self, 5)
#define WAITING(self) STATE(self, 6)
#define WORKERS(self) STATE(self, 7)
#define IDLE(self) STATE(self, 8)
#define WORKER_TARGETS(self) STATE(self, 9)
#define SHARED_WORKERS(self) STATE(self, 10)
#define WAIT_REASONS(self) STATE(self, 11)
#define LOOP_CELL(self) STATE(self, 12)
#define TAKE_IDLE_WORKER(self) STATE(self, 13)
#define STATE_SIZE 14

/* trace.add(kernel.now, who, kind, {key1: value1[, key2: value2]}). */
static int
record(PyObject *self, PyObject *who, PyObject *kind, PyObject *key1, PyObject *value1,
       PyObject *key2, PyObject *value2)
{
    PyObject *now = NULL, *fields = NULL, *done = NULL;
    int rc = -1;
    if ((now = get(&f_now, KERNEL(self))) == NULL
            || (fields = record_fields(kind, key1, value1, key2, value2)) == NULL) goto out;
    PyObject *args[] = {TRACE(self), now, who, kind, fields};
    done = PyObject_VectorcallMethod(str_add, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    rc = done == NULL ? -1 : 0;
out:
    Py_XDECREF(now);
    Py_XDECREF(fields);
    Py_XDECREF(done);
    return rc;
}

/* -- signal ------------------------------------------------------------------------ */

static PyObject *
signal_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = FALLBACK(self);
    if (nargs != 1 || !no_keywords(kwnames) || !PyLong_CheckExact(args[0])) {
        return fall_back(fallback, args, nargs, kwnames);
    }
    int overflow;
    long value = PyLong_AsLongAndOverflow(args[0], &overflow);
    if (overflow) return fall_back(fallback, args, nargs, kwnames);
    if (value == -1 && PyErr_Occurred()) return NULL;
    PyObject *kernel = KERNEL(self), *proc = NULL, *faults = NULL, *name = NULL;
    PyObject *num = NULL, *reader = NULL, *result = NULL;
    if ((proc = get(&f_current, kernel)) == NULL
            || (faults = PyObject_GetAttr(INST(self), str_faults)) == NULL) goto out;
    int master = proc == Py_None ? 1 : PyObject_IsInstance(proc, Master);
    if (master < 0) goto out;
    if (master || faults != Py_None) {  /* lost, or a fault may be planned */
        result = fall_back(fallback, args, nargs, kwnames);
        goto out;
    }
    if ((name = get(&f_name, proc)) == NULL
            || (num = PyLong_FromLong(value & 0xFF)) == NULL
            || record(self, name, str_signal_raise, str_num, num, NULL, NULL) < 0
            || (reader = PyObject_GetAttr(SIGNALS(self), str_master_read)) == NULL
            || call_void(kernel, str_call_soon, reader, num) < 0) goto out;
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(proc);
    Py_XDECREF(faults);
    Py_XDECREF(name);
    Py_XDECREF(num);
    Py_XDECREF(reader);
    return result;
}

/* -- the master's read ---------------------------------------------------------------- */

static PyObject *
master_read_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1 || nargs > 2 || !no_keywords(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "master_read(num, fired=None)");
        return NULL;
    }
    PyObject *loop = NULL, *flag = NULL, *route = NULL, *result = NULL;
    /* inst.master_loop, remembered once there is one (the timers subsystem is created
     * and replaced together with this one) */
    PyObject *cell = LOOP_CELL(self);
    loop = Py_NewRef(PyList_GET_ITEM(cell, 0));
    if (loop == Py_None) {
        Py_SETREF(loop, PyObject_GetAttr(INST(self), str_master_loop));
        if (loop == NULL) goto out;
        if (loop != Py_None) PyList_SetItem(cell, 0, Py_NewRef(loop));
    }
    if ((route = PyObject_GetAttr(SIGNALS(self), str_route)) == NULL) goto out;
    int running = 0;
    if (loop != Py_None) {
        if ((flag = PyObject_GetAttr(loop, str_started)) == NULL) goto out;
        running = PyObject_IsTrue(flag);
        Py_CLEAR(flag);
        if (running > 0) {
            if ((flag = PyObject_GetAttr(loop, str_closed)) == NULL) goto out;
            int closed = PyObject_IsTrue(flag);
            running = closed < 0 ? -1 : !closed;
        }
        if (running < 0) goto out;
    }
    if (running) {  /* an event of the master's loop */
        PyObject *call[] = {loop, route, args[0], nargs > 1 ? args[1] : NULL};
        result = PyObject_VectorcallMethod(
            str_event, call, (nargs + 2) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    } else {
        result = PyObject_Vectorcall(route, args, nargs, NULL);
    }
out:
    Py_XDECREF(loop);
    Py_XDECREF(flag);
    Py_XDECREF(route);
    return result;
}

/* -- routing ------------------------------------------------------------------------- */

/* kernel.resume(proc, value) from the hub, kernel.wake(proc, value) from a process. */
static int
wake(PyObject *kernel, PyObject *proc, PyObject *value)
{
    PyObject *current = get(&f_current, kernel);
    if (current == NULL) return -1;
    Py_DECREF(current);
    return call_void(kernel, current == Py_None ? str_resume : str_wake, proc, value);
}

/* One worker's turn in `Signals.to_workers`. */
static int
to_worker(PyObject *self, PyObject *w, PyObject *num)
{
    PyObject *waiting = WAITING(self), *kernel = KERNEL(self);
    PyObject *flag = NULL, *acceptor = NULL, *message = NULL, *queue = NULL;
    int rc = -1;
    if (PyDict_GET_SIZE(waiting)) {
        /* a core of the worker in signal_wait() reads it (the first that began waiting) */
        Py_ssize_t pos = 0;
        PyObject *proc, *wanted;
        while (PyDict_Next(waiting, &pos, &proc, &wanted)) {
            PyObject *main = PyObject_GetAttr(proc, str_main);
            if (main == NULL) goto out;
            Py_DECREF(main);
            if (main == w) {
                Py_INCREF(proc);
                rc = PyDict_DelItem(waiting, proc) < 0 ? -1
                     : call_void(kernel, str_wake, proc, num);
                Py_DECREF(proc);
                goto out;
            }
        }
    }
    if ((flag = get(&f_idle, w)) == NULL) goto out;
    int is_idle = PyObject_IsTrue(flag);
    if (is_idle < 0) goto out;
    if (is_idle) {
        /* an idle worker in its accept loop reads the signal at once */
        if (call_void(IDLE(self), str_remove, w, NULL) < 0
                || set(&f_idle, w, Py_False) < 0
                || (acceptor = get(&f_acceptor, w)) == NULL
                || (message = PyTuple_Pack(2, str_sig, num)) == NULL) goto out;
        rc = wake(kernel, acceptor, message);
    } else {
        if ((queue = PyObject_GetAttr(w, str_signal_queue)) == NULL) goto out;
        rc = call_void(queue, str_append, num, NULL);
    }
out:
    Py_XDECREF(flag);
    Py_XDECREF(acceptor);
    Py_XDECREF(message);
    Py_XDECREF(queue);
    return rc;
}

/* `Signals._to_shared_workers` with no process in signal_wait: the idle worker
 * `take_idle_worker` gives reads it, else the shared socket holds it. */
static int
to_shared_workers(PyObject *self, PyObject *num)
{
    PyObject *call_args[] = {INST(self), str_signal};
    PyObject *worker = PyObject_Vectorcall(TAKE_IDLE_WORKER(self), call_args, 2, NULL);
    if (worker == NULL) return -1;
    PyObject *acceptor = NULL, *message = NULL;
    int rc = -1;
    if (worker == Py_None) {
        rc = call_void(SHARED_WORKERS(self), str_append, num, NULL);
    } else if ((acceptor = get(&f_acceptor, worker)) != NULL
               && (message = PyTuple_Pack(2, str_sig, num)) != NULL) {
        rc = wake(KERNEL(self), acceptor, message);
    }
    Py_DECREF(worker);
    Py_XDECREF(acceptor);
    Py_XDECREF(message);
    return rc;
}

/* Delivers `num` by the worker target `wid` (0: every worker, -1: one idle worker): 1
 * done, 0 not a case of this path (no such worker, a process in signal_wait), -1
 * error. */
static int
to_worker_target(PyObject *self, PyObject *wid, PyObject *num)
{
    PyObject *workers = WORKERS(self);
    int rc = -1;
    long which = PyLong_AsLong(wid);
    if (which == -1 && PyErr_Occurred()) return -1;
    if (which == -1) {
        if (PyDict_GET_SIZE(WAITING(self))) return 0;  /* the Python code chooses */
        return to_shared_workers(self, num) < 0 ? -1 : 1;
    }
    if (which == 0) {
        /* "workers": one copy each, in the order of the map when routed */
        PyObject *targets = PyDict_Values(workers);
        if (targets != NULL) {
            rc = 1;
            for (Py_ssize_t i = 0; rc == 1 && i < PyList_GET_SIZE(targets); i++) {
                if (to_worker(self, PyList_GET_ITEM(targets, i), num) < 0) rc = -1;
            }
            Py_DECREF(targets);
        }
    } else {
        PyObject *w = PyDict_GetItemWithError(workers, wid);
        if (w == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
        } else {
            Py_INCREF(w);
            rc = to_worker(self, w, num) < 0 ? -1 : 1;
            Py_DECREF(w);
        }
    }
    return rc;
}

static PyObject *
route_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1 || nargs > 2 || !no_keywords(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "route(num, fired=None)");
        return NULL;
    }
    PyObject *num = args[0], *target = NULL, *result = NULL;
    if (nargs > 1 && args[1] != Py_None  /* the firing timer's record first */
            && record(self, str_master, args[1], str_num, num, NULL, NULL) < 0) return NULL;
    PyObject *table = PyDict_GetItemWithError(TABLES(self), zero);
    if (table == NULL || !PyDict_Check(table)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "no slot-0 signal table");
        goto out;
    }
    PyObject *entry = PyDict_GetItemWithError(table, num);
    if (entry == NULL) {
        if (PyErr_Occurred()) goto out;
        target = PyUnicode_FromString("");
    } else {
        target = get(&f_target, entry);
    }
    if (target == NULL
            || record(self, str_master, str_signal_route, str_num, num, str_target, target) < 0)
        goto out;
    PyObject *wid = PyDict_GetItemWithError(WORKER_TARGETS(self), target);
    if (wid == NULL && PyErr_Occurred()) goto out;
    if (wid != NULL) {
        int done = to_worker_target(self, wid, num);
        if (done < 0) goto out;
        if (done) {
            result = Py_NewRef(Py_None);
            goto out;
        }
    }
    result = call_method(SIGNALS(self), str_deliver, target, num);
out:
    Py_XDECREF(target);
    return result;
}

/* -- running handlers ---------------------------------------------------------------- */

/* The entry `proc` runs for `num` in this path (borrowed), NULL when the Python code
 * handles it (nothing to run, or harakiri armed; no error set) or on error. */
static PyObject *
runnable_entry(PyObject *self, PyObject *proc, PyObject *num)
{
    int is_worker = PyObject_IsInstance(proc, Worker);
    if (is_worker < 0) return NULL;
    PyObject *slot = is_worker ? get(&f_id, proc) : Py_NewRef(zero);
    if (slot == NULL) return NULL;
    PyObject *entry = NULL, *table = PyDict_GetItemWithError(TABLES(self), slot);
    if (table != NULL && PyDict_Check(table)) entry = PyDict_GetItemWithError(table, num);
    if (entry != NULL) {
        PyObject *wid = get(&f_wid, entry);
        int own = -1;
        if (wid != NULL) {
            own = PyObject_RichCompareBool(wid, zero, Py_EQ);
            if (own == 0) own = PyObject_RichCompareBool(wid, slot, Py_EQ);
            Py_DECREF(wid);
        }
        if (own <= 0) entry = NULL;
    }
    if (entry != NULL && is_worker) {
        PyObject *harakiri = get(&f_harakiri, INST(self));
        int armed = harakiri == NULL ? -1 : PyObject_IsTrue(harakiri);
        Py_XDECREF(harakiri);
        if (armed != 0) entry = NULL;
    }
    Py_DECREF(slot);
    return entry;
}

static PyObject *
run_handler_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = FALLBACK(self);
    if (nargs < 2 || nargs > 3 || !no_keywords(kwnames)) {
        return fall_back(fallback, args, nargs, kwnames);
    }
    PyObject *proc = args[0], *num = args[1];
    PyObject *entry = runnable_entry(self, proc, num), *result = NULL;
    PyObject *count = NULL, *name = NULL, *handler = NULL, *call = NULL, *outcome = NULL;
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : fall_back(fallback, args, nargs, kwnames);
    }
    Py_INCREF(entry);
    PyObject *before = get(&f_signals, proc);
    if (before != NULL) {
        count = PyNumber_Add(before, one);
        Py_DECREF(before);
    }
    if (count == NULL || set(&f_signals, proc, count) < 0
            || set(&f_in_handler, proc, num) < 0
            || (name = get(&f_name, proc)) == NULL
            || record(self, name, str_signal_handler, str_num, num, NULL, NULL) < 0
            || (handler = get(&f_handler, entry)) == NULL
            || (call = PyObject_GetAttr(INST(self), str_call_python)) == NULL) goto out;
    PyObject *call_args[] = {handler, num};
    outcome = PyObject_Vectorcall(call, call_args, 2, NULL);
    /* finally: proc.in_handler = -1, keeping the handler's exception */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    int reset = set(&f_in_handler, proc, minus_one);
    if (type != NULL) {
        if (reset < 0) PyErr_Clear();
        PyErr_Restore(type, value, tb);
        goto out;
    }
    if (reset < 0) goto out;
    PyObject *ok = PyTuple_Check(outcome) && PyTuple_GET_SIZE(outcome) == 2
                   ? PyTuple_GET_ITEM(outcome, 0) : NULL;
    if (ok == NULL) {
        PyErr_SetString(PyExc_TypeError, "call_python() returns (ok, result)");
        goto out;
    }
    int report = nargs < 3 ? 1 : PyObject_IsTrue(args[2]);
    int succeeded = PyObject_IsTrue(ok);
    if (report < 0 || succeeded < 0) goto out;
    if (!succeeded && report && call_void(SIGNALS(self), str_handler_failed, proc, num) < 0)
        goto out;
    result = Py_NewRef(Py_None);
out:
    Py_DECREF(entry);
    Py_XDECREF(count);
    Py_XDECREF(name);
    Py_XDECREF(handler);
    Py_XDECREF(call);
    Py_XDECREF(outcome);
    return result;
}

/* -- signal_wait --------------------------------------------------------------------- */

/* popleft() of the deque `owner.<name>` (of `owner` itself when `name` is NULL) when
 * not empty: a new reference, NULL with no error when empty. */
static PyObject *
pop_queued(PyObject *owner, PyObject *name)
{
    PyObject *queue = name != NULL ? PyObject_GetAttr(owner, name) : Py_NewRef(owner);
    if (queue == NULL) return NULL;
    PyObject *item = NULL;
    Py_ssize_t n = PyObject_Length(queue);
    if (n > 0) item = call_method(queue, str_popleft, NULL, NULL);
    Py_DECREF(queue);
    return item;
}

/* The worker's wait loop (`Signals.wait`), `wanted` None or an int. */
static PyObject *
wait_loop(PyObject *self, PyObject *proc, PyObject *wanted)
{
    PyObject *signals = SIGNALS(self);
    /* _request_struct: the request in flight, else the process's own */
    PyObject *holder = PyObject_GetAttr(proc, str_request), *run = NULL, *result = NULL;
    if (holder == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
        holder = Py_NewRef(Py_None);
    }
    int has_request = PyObject_IsTrue(holder);
    if (has_request <= 0) {  /* the process's own request structure */
        Py_SETREF(holder, Py_NewRef(proc));
        if (has_request < 0) goto out;
    }
    if (PyObject_SetAttr(holder, str_signal_received, minus_one) < 0
            || (run = PyObject_GetAttr(signals, str_run_handler)) == NULL) goto out;
    while (1) {
        PyObject *num = pop_queued(proc, str_signal_queue), *reason = NULL;
        if (num == NULL && !PyErr_Occurred()) num = pop_queued(SHARED_WORKERS(self), NULL);
        if (num == NULL) {
            if (PyErr_Occurred() || PyDict_SetItem(WAITING(self), proc, wanted) < 0) goto out;
            reason = PyDict_GetItemWithError(WAIT_REASONS(self), wanted);
            if (reason != NULL) {
                Py_INCREF(reason);
            } else if (PyErr_Occurred()
                       || (reason = call_method(signals, str_wait_reason, wanted, NULL)) == NULL) {
                goto out;
            }
            num = call_method(KERNEL(self), str_park, reason, NULL);
            Py_DECREF(reason);
            if (num == NULL) goto out;
        }
        int done = -1;
        if (PyObject_SetAttr(holder, str_signal_received, num) == 0) {
            PyObject *run_args[] = {proc, num, Py_False};
            PyObject *ran = PyObject_Vectorcall(run, run_args, 3, NULL);
            if (ran != NULL) {
                Py_DECREF(ran);
                done = wanted == Py_None ? 1 : PyObject_RichCompareBool(num, wanted, Py_EQ);
            }
        }
        Py_DECREF(num);
        if (done < 0) goto out;
        if (done) break;
    }
    result = PyBytes_FromStringAndSize(NULL, 0);
out:
    Py_DECREF(holder);
    Py_XDECREF(run);
    return result;
}

static PyObject *
signal_wait_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = FALLBACK(self);
    if (nargs > 1 || !no_keywords(kwnames) || (nargs == 1 && !PyLong_CheckExact(args[0]))) {
        return fall_back(fallback, args, nargs, kwnames);
    }
    PyObject *wanted = Py_None;
    if (nargs == 1) {
        int overflow;
        long value = PyLong_AsLongAndOverflow(args[0], &overflow);
        if (overflow) return fall_back(fallback, args, nargs, kwnames);
        if (value == -1 && PyErr_Occurred()) return NULL;
        if ((wanted = PyLong_FromLong(value & 0xFF)) == NULL) return NULL;
    } else {
        Py_INCREF(wanted);
    }
    PyObject *result = NULL, *proc = get(&f_current, KERNEL(self));
    if (proc == NULL) goto out;
    int is_worker = PyObject_IsInstance(proc, Worker);
    if (is_worker < 0) goto out;
    result = is_worker ? wait_loop(self, proc, wanted)
                       : fall_back(fallback, args, nargs, kwnames);
out:
    Py_DECREF(wanted);
    Py_XDECREF(proc);
    return result;
}

/* -- the module ---------------------------------------------------------------------- */

static PyMethodDef defs[] = {
    {"signal", FASTCALL(signal_call), NULL},
    {"master_read", FASTCALL(master_read_call), NULL},
    {"route", FASTCALL(route_call), NULL},
    {"run_handler", FASTCALL(run_handler_call), NULL},
    {"signal_wait", FASTCALL(signal_wait_call), NULL},
};

/* The builtin function defs[index] over `state` (see STATE). */
static PyObject *
make(int index, PyObject *state)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != STATE_SIZE
            || !PyDict_CheckExact(TABLES(state)) || !PyDict_CheckExact(WAITING(state))
            || !PyDict_CheckExact(WORKERS(state)) || !PyList_CheckExact(IDLE(state))
            || !PyDict_CheckExact(WORKER_TARGETS(state))
            || !PyDict_CheckExact(WAIT_REASONS(state))
            || !PyList_CheckExact(LOOP_CELL(state)) || PyList_GET_SIZE(LOOP_CELL(state)) != 1) {
        PyErr_Format(PyExc_TypeError, "%s: the state is Signals._c_state()",
                     defs[index].ml_name);
        return NULL;
    }
    if (Master == NULL) {  /* the process classes, once */
        PyObject *types = PyObject_GetAttr(SIGNALS(state), str_process_types);
        if (types == NULL) return NULL;
        if (!PyTuple_Check(types) || PyTuple_GET_SIZE(types) != 2) {
            Py_DECREF(types);
            PyErr_SetString(PyExc_TypeError, "_process_types is (Master, Worker)");
            return NULL;
        }
        Master = Py_NewRef(PyTuple_GET_ITEM(types, 0));
        Worker = Py_NewRef(PyTuple_GET_ITEM(types, 1));
        Py_DECREF(types);
    }
    return PyCFunction_NewEx(&defs[index], state, NULL);
}

#define MAKER(name, index) \
    static PyObject * \
    new_##name(PyObject *module, PyObject *state) { return make(index, state); }

MAKER(signal, 0)
MAKER(master_read, 1)
MAKER(route, 2)
MAKER(run_handler, 3)
MAKER(signal_wait, 4)

static PyMethodDef methods[] = {
    {"signal", new_signal, METH_O, "uwsgi.signal's fast path (fallback: the facade's)."},
    {"master_read", new_master_read, METH_O, "Signals.master_read's fast path."},
    {"route", new_route, METH_O, "Signals.route's fast path."},
    {"run_handler", new_run_handler, METH_O,
     "Signals.run_handler's fast path (fallback: the method)."},
    {"signal_wait", new_signal_wait, METH_O,
     "uwsgi.signal_wait's fast path (fallback: the facade's)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_csignals",
    "C accelerator for simuwsgi.subsystems.signals (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__csignals(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_add, "add")
    INTERN(str_faults, "faults")
    INTERN(str_master_read, "master_read") INTERN(str_call_soon, "call_soon")
    INTERN(str_num, "num") INTERN(str_signal_raise, "signal.raise")
    INTERN(str_master_loop, "master_loop") INTERN(str_started, "started")
    INTERN(str_closed, "closed") INTERN(str_event, "event") INTERN(str_route, "route")
    INTERN(str_target, "target") INTERN(str_signal_route, "signal.route")
    INTERN(str_deliver, "_deliver") INTERN(str_main, "main") INTERN(str_wake, "wake")
    INTERN(str_remove, "remove")
    INTERN(str_resume, "resume") INTERN(str_sig, "sig")
    INTERN(str_signal_queue, "signal_queue") INTERN(str_append, "append")
    INTERN(str_signal_handler, "signal.handler") INTERN(str_call_python, "call_python")
    INTERN(str_handler_failed, "_handler_failed")
    INTERN(str_run_handler, "run_handler") INTERN(str_request, "request")
    INTERN(str_signal_received, "signal_received") INTERN(str_popleft, "popleft")
    INTERN(str_park, "park")
    INTERN(str_wait_reason, "_wait_reason") INTERN(str_process_types, "_process_types")
    INTERN(str_master, "master") INTERN(str_signal, "signal")
#undef INTERN
    FIELDS(FIELD_INTERN)
    if ((minus_one = PyLong_FromLong(-1)) == NULL || (zero = PyLong_FromLong(0)) == NULL
            || (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
