/*
 * Optional C accelerator for the master's loop (simuwsgi.subsystems.timers.MasterLoop),
 * its signal crons (cron.Cron) and its timers' firings (timers.Timers).
 *
 * A cron firing is an idle wake-up of the master: the loop's iteration (its phase, each
 * client's checks, the hooks, the next wake-up planned), the cron's check of each entry,
 * the firing (the `[uwsgi-cron] routing signal N` line with its date, the `cron.signal`
 * record, the signal routed) and the entry's next firing planned. A timer's firing is a
 * kernel event that re-arms it and hands the signal to the master's read. Each step is
 * a Python method; this module makes builtin functions of them, step for step what the
 * Python method does, calling the other clients' hooks and every case it does not
 * handle back in Python (the Python code stays the twin and the one place where
 * command crons, rb_timers, file monitors and unusual values live):
 *
 *   event(loop_state)         MasterLoop.event(handler, *args)
 *   iterate(loop_state)       MasterLoop._iterate(timeout, handler=None, args=())
 *   replan(loop_state)        MasterLoop.replan()
 *   idle_wake(loop_state)     MasterLoop._idle_wake(generation)
 *   cron_before_events(cron_state)   Cron.before_events(loop, wall_s, timeout): the
 *       signal crons checked and fired here (an entry with a field to match is checked
 *       by `Cron._due`); the command crons by `Cron._before_commands`.
 *   cron_next_wake(cron_state)       Cron.next_wake(loop): an entry's plan computed
 *       here when every field is "any" and the loop's interval an int (`Cron.plan`
 *       otherwise).
 *   cron_at_top                      Cron.at_top(loop, wall_s): nothing.
 *   timer_fired(timers_state)        Timers._timer_fired(timer)
 *
 * The states are tuples of the objects they work on, which live as long as the
 * instance (see the Python constructors); the fields of the loop, the cron entries,
 * the local day, the clock and the kernel are read at their slots' offsets (see
 * _cfields.h). What this saves is a cron firing's Python frames (about a dozen) and
 * most of its attribute look-ups. SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the
 * Python methods.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "../_core/_cutil.h"
#include "_cfields.h"

#define FIELDS(X) \
    X(now) X(last_wake) X(interval) X(grid_epoch) X(started) X(closed) X(needs_iteration) \
    X(wall_offset) X(_wake_at) X(_wake_gen) X(_idle_wake) X(stopped) X(last_job) \
    X(always) X(plan) X(plan_key) X(sig) X(_lo) X(_hi) X(_base) X(_day) X(_year) X(_zone) \
    X(log_sink) X(master) X(name) X(log_lines) X(tail) X(limit) X(subsystems) \
    X(_signals) X(fired) X(next) X(secs) X(num) X(_timer_fired) X(_route)
FIELDS(FIELD_DECLARE)

/* Method and other names. */
static PyObject *str_before_events, *str_at_top, *str_next_wake, *str_post_at, *str_due;
static PyObject *str_plan, *str_before_commands, *str_asctime, *str_spill, *str_add;
static PyObject *str_cron_signal, *str_num, *str_signals, *str_route, *str_get;
static PyObject *str_signals_subsystem, *str_master_read, *str_timer_fire, *str_event;
static PyObject *str_master, *str_log, *str_log_dated, *str_tzname, *one;
/* the time module's dict: `time.tzname` is a new tuple after each `time.tzset()` */
static PyObject *time_dict;

#define ITEM(state, i) PyTuple_GET_ITEM((state), (i))

/* 0 when a call has lo..hi positional arguments and no keywords, else -1 with a
 * TypeError showing `usage`. */
static int
arity(Py_ssize_t nargs, Py_ssize_t lo, Py_ssize_t hi, PyObject *kwnames, const char *usage)
{
    if (nargs < lo || nargs > hi || !no_keywords(kwnames)) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    return 0;
}

/* -- the master loop ------------------------------------------------------------------ */

#define LOOP(s) ITEM(s, 0)
#define LOOP_INST(s) ITEM(s, 1)
#define LOOP_KERNEL(s) ITEM(s, 2)
#define LOOP_CLOCK(s) ITEM(s, 3)
#define LOOP_CLIENTS(s) ITEM(s, 4)
#define LOOP_STATE_SIZE 5

/* MasterLoop._move_phase(now), with Python's float arithmetic. */
static int
move_phase(PyObject *loop, PyObject *now)
{
    PyObject *last = get(&f_last_wake, loop);
    if (last == NULL) return -1;
    int same = PyObject_RichCompareBool(now, last, Py_EQ);
    double last_d = PyFloat_AsDouble(last);
    Py_DECREF(last);
    if (same != 0) return same < 0 ? -1 : 0;
    if (last_d == -1.0 && PyErr_Occurred()) return -1;
    PyObject *interval = get(&f_interval, loop);
    if (interval == NULL) return -1;
    double interval_d = PyFloat_AsDouble(interval);
    Py_DECREF(interval);
    double now_d = PyFloat_AsDouble(now);
    if (PyErr_Occurred()) return -1;
    if (interval_d == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    double off_grid = fmod((now_d - last_d) / interval_d, 1.0);  /* Python's % 1.0 */
    if (off_grid != 0.0 && off_grid < 0.0) off_grid += 1.0;
    if (1e-9 < off_grid && off_grid < 1.0 - 1e-9) {
        PyObject *epoch = get(&f_grid_epoch, loop);
        if (epoch == NULL) return -1;
        PyObject *next = PyNumber_Add(epoch, one);
        Py_DECREF(epoch);
        if (next == NULL) return -1;
        int rc = set(&f_grid_epoch, loop, next);
        Py_DECREF(next);
        if (rc < 0) return -1;
    }
    return set(&f_last_wake, loop, now);
}

/* `for client in clients: if client.needs_iteration: client.<hook>(loop, wall_s[,
 * timeout])`, over the list as it grows (a hook may add a client). */
static int
each_client(PyObject *state, PyObject *hook, PyObject *wall_s, PyObject *timeout)
{
    PyObject *clients = LOOP_CLIENTS(state);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(clients); i++) {
        PyObject *client = Py_NewRef(PyList_GET_ITEM(clients, i));
        int needs = get_true(&f_needs_iteration, client);
        int rc = needs <= 0 ? needs
                 : call_void3(client, hook, LOOP(state), wall_s, timeout);
        Py_DECREF(client);
        if (rc < 0) return -1;
    }
    return 0;
}

static int
replan(PyObject *state)
{
    PyObject *loop = LOOP(state), *clients = LOOP_CLIENTS(state), *best = Py_NewRef(Py_None);
    PyObject *wake_at = NULL, *gen = NULL, *now = NULL, *callback = NULL;
    int rc = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(clients); i++) {
        PyObject *client = Py_NewRef(PyList_GET_ITEM(clients, i));
        int needs = get_true(&f_needs_iteration, client);
        PyObject *when = needs <= 0 ? NULL
                         : call_method3(client, str_next_wake, loop, NULL, NULL);
        Py_DECREF(client);
        if (needs < 0 || (needs && when == NULL)) goto out;
        if (when == NULL || when == Py_None) {
            Py_XDECREF(when);
            continue;
        }
        int earlier = best == Py_None ? 1 : PyObject_RichCompareBool(when, best, Py_LT);
        if (earlier < 0) {
            Py_DECREF(when);
            goto out;
        }
        if (earlier) Py_SETREF(best, when);
        else Py_DECREF(when);
    }
    if ((wake_at = get(&f__wake_at, loop)) == NULL) goto out;
    int same = PyObject_RichCompareBool(best, wake_at, Py_EQ);
    if (same != 0) {
        rc = same < 0 ? -1 : 0;
        goto out;
    }
    if ((gen = get(&f__wake_gen, loop)) == NULL) goto out;
    Py_SETREF(gen, PyNumber_Add(gen, one));
    if (gen == NULL || set(&f__wake_gen, loop, gen) < 0
            || set(&f__wake_at, loop, best) < 0) goto out;
    if (best != Py_None) {
        PyObject *kernel = LOOP_KERNEL(state);
        if ((now = get(&f_now, kernel)) == NULL
                || (callback = get(&f__idle_wake, loop)) == NULL) goto out;
        int later = PyObject_RichCompareBool(now, best, Py_GT);  /* max(best, now) */
        if (later < 0
                || call_void3(kernel, str_post_at, later ? now : best, callback, gen) < 0)
            goto out;
    }
    rc = 0;
out:
    Py_DECREF(best);
    Py_XDECREF(wake_at);
    Py_XDECREF(gen);
    Py_XDECREF(now);
    Py_XDECREF(callback);
    return rc;
}

/* MasterLoop._iterate(timeout, handler, args) (handler NULL: none). */
static int
iterate(PyObject *state, PyObject *timeout, PyObject *handler, PyObject *args)
{
    PyObject *loop = LOOP(state);
    PyObject *now = get(&f_now, LOOP_KERNEL(state)), *wall_s = NULL, *offset = NULL;
    PyObject *wall = NULL;
    int rc = -1;
    if (now == NULL || move_phase(loop, now) < 0
            || (offset = get(&f_wall_offset, LOOP_CLOCK(state))) == NULL
            || (wall = PyNumber_Add(offset, now)) == NULL) goto out;
    double wall_d = PyFloat_AsDouble(wall);  /* uwsgi_now() */
    if ((wall_d == -1.0 && PyErr_Occurred())
            || (wall_s = PyLong_FromDouble(floor(wall_d))) == NULL
            || each_client(state, str_before_events, wall_s, timeout) < 0) goto out;
    if (handler != NULL) {
        PyObject *done = PyObject_Call(handler, args, NULL);
        if (done == NULL) goto out;
        Py_DECREF(done);
    }
    /* handlers run without virtual time passing: the same second */
    if (each_client(state, str_at_top, wall_s, NULL) < 0 || replan(state) < 0) goto out;
    rc = 0;
out:
    Py_XDECREF(now);
    Py_XDECREF(offset);
    Py_XDECREF(wall);
    Py_XDECREF(wall_s);
    return rc;
}

static PyObject *
iterate_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char usage[] = "_iterate(timeout, handler=None, args=())";
    if (arity(nargs, 1, 3, kwnames, usage) < 0) return NULL;
    if (nargs == 3 && !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    PyObject *handler = nargs > 1 && args[1] != Py_None ? args[1] : NULL;
    PyObject *call_args = nargs > 2 ? Py_NewRef(args[2]) : PyTuple_New(0);
    if (call_args == NULL) return NULL;
    int rc = iterate(state, args[0], handler, call_args);
    Py_DECREF(call_args);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
event_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (arity(nargs, 1, PY_SSIZE_T_MAX, kwnames, "event(handler, *args)") < 0) return NULL;
    PyObject *loop = LOOP(state), *clients = LOOP_CLIENTS(state);
    int closed = get_true(&f_closed, loop);
    int started = closed != 0 ? 0 : get_true(&f_started, loop);
    if (closed < 0 || started < 0) return NULL;
    if (!started) Py_RETURN_NONE;
    int needs = 0;
    for (Py_ssize_t i = 0; needs == 0 && i < PyList_GET_SIZE(clients); i++) {
        needs = get_true(&f_needs_iteration, PyList_GET_ITEM(clients, i));
    }
    if (needs < 0) return NULL;
    if (needs) {
        PyObject *call_args = PyTuple_New(nargs - 1);
        if (call_args == NULL) return NULL;
        for (Py_ssize_t i = 1; i < nargs; i++) {
            PyTuple_SET_ITEM(call_args, i - 1, Py_NewRef(args[i]));
        }
        int rc = iterate(state, Py_False, args[0], call_args);
        Py_DECREF(call_args);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    /* no client has work at iteration boundaries: the iteration only moves the phase */
    PyObject *now = get(&f_now, LOOP_KERNEL(state));
    if (now == NULL) return NULL;
    int moved = move_phase(loop, now);
    Py_DECREF(now);
    if (moved < 0) return NULL;
    PyObject *done = PyObject_Vectorcall(args[0], args + 1, nargs - 1, NULL);
    if (done == NULL) return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyObject *
replan_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (arity(nargs, 0, 0, kwnames, "replan() takes no arguments") < 0) return NULL;
    return replan(state) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
idle_wake_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (arity(nargs, 1, 1, kwnames, "_idle_wake(generation)") < 0) return NULL;
    PyObject *loop = LOOP(state);
    PyObject *gen = get(&f__wake_gen, loop);
    if (gen == NULL) return NULL;
    int current = PyObject_RichCompareBool(args[0], gen, Py_EQ);
    Py_DECREF(gen);
    if (current <= 0) return current < 0 ? NULL : Py_NewRef(Py_None);  /* replaced */
    if (set(&f__wake_at, loop, Py_None) < 0) return NULL;
    int closed = get_true(&f_closed, loop);
    int stopped = closed != 0 ? 1 : get_true(&f_stopped, LOOP_INST(state));
    if (closed < 0 || stopped < 0) return NULL;
    if (!stopped) {
        PyObject *no_args = PyTuple_New(0);
        int rc = no_args == NULL ? -1 : iterate(state, Py_True, NULL, no_args);
        Py_XDECREF(no_args);
        if (rc < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* -- the signal crons ----------------------------------------------------------------- */

#define CRON(s) ITEM(s, 0)
#define CRON_INST(s) ITEM(s, 1)
#define CRON_KERNEL(s) ITEM(s, 2)
#define CRON_TRACE(s) ITEM(s, 3)
#define SIGNAL_CRONS(s) ITEM(s, 4)
#define COMMAND_CRONS(s) ITEM(s, 5)
#define DAYS(s) ITEM(s, 6)
#define CRON_CLOCK(s) ITEM(s, 7)
#define INSTANCE_LOG(s) ITEM(s, 8)
#define CRON_STATE_SIZE 9

/* 1 when `days` holds a day of the zone `time.tzname` names now, 0 not, -1 error. */
static int
same_zone(PyObject *days)
{
    PyObject *zone = get(&f__zone, days);
    if (zone == NULL) return -1;
    PyObject *now = PyDict_GetItemWithError(time_dict, str_tzname);  /* borrowed */
    Py_DECREF(zone);
    return now == zone ? 1 : PyErr_Occurred() ? -1 : 0;
}

/* The firing's line, f"{LocalDays.asctime(s)} - [uwsgi-cron] routing signal {sig}":
 * the date from the day `LocalDays` holds, or from its Python method for a second
 * outside that day (or after a `time.tzset()`). */
static PyObject *
cron_line(PyObject *state, PyObject *wall_s, PyObject *sig)
{
    PyObject *days = DAYS(state), *day = NULL, *year = NULL, *line = NULL;
    long long s = 0, lo, hi, base, num = 0;
    int rc = as_int(wall_s, &s);
    if (rc == 1) rc = as_int(sig, &num);
    if (rc == 1) rc = same_zone(days);
    if (rc == 1 && (rc = get_int(&f__lo, days, &lo)) == 1 && lo <= s
            && (rc = get_int(&f__hi, days, &hi)) == 1 && s < hi
            && (rc = get_int(&f__base, days, &base)) == 1
            && (day = get(&f__day, days)) != NULL && (year = get(&f__year, days)) != NULL
            && PyUnicode_IS_COMPACT_ASCII(day) && PyUnicode_IS_COMPACT_ASCII(year)) {
        long long sod = s - base;  /* the second of the local day */
        Py_ssize_t day_n = PyUnicode_GET_LENGTH(day), year_n = PyUnicode_GET_LENGTH(year);
        if (sod >= 0 && sod < 86400 && day_n < 32 && year_n < 32 && num >= 0) {
            /* written by hand: snprintf's format parsing costs as much as the rest */
            char text[160], *p = text;
            memcpy(p, PyUnicode_DATA(day), day_n);
            p += day_n;
            int hms[3] = {(int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60)};
            for (int i = 0; i < 3; i++) {  /* "hh:mm:ss" */
                if (i) *p++ = ':';
                *p++ = (char)('0' + hms[i] / 10);
                *p++ = (char)('0' + hms[i] % 10);
            }
            memcpy(p, PyUnicode_DATA(year), year_n);
            p += year_n;
            static const char routing[] = " - [uwsgi-cron] routing signal ";
            memcpy(p, routing, sizeof routing - 1);
            p += sizeof routing - 1;
            char digits[24];
            int n = 0;
            do digits[n++] = (char)('0' + num % 10); while ((num /= 10) > 0);
            while (n) *p++ = digits[--n];
            line = PyUnicode_DecodeASCII(text, p - text, NULL);
            goto out;
        }
    }
    if (rc < 0 || PyErr_Occurred()) goto out;
    PyObject *date = call_method3(days, str_asctime, wall_s, NULL, NULL);
    if (date != NULL) {
        line = PyUnicode_FromFormat("%S - [uwsgi-cron] routing signal %S", date, sig);
        Py_DECREF(date);
    }
out:
    Py_XDECREF(day);
    Py_XDECREF(year);
    return line;
}

/* 1 when inst.log is Instance.log (not replaced on the instance, as fork mode's child
 * does), 0 when it is something else, -1 on error: told without making the bound
 * method. */
static int
plain_log(PyObject *state, PyObject *inst)
{
    if (Py_TYPE(inst)->tp_getattro != PyObject_GenericGetAttr
            || _PyType_Lookup(Py_TYPE(inst), str_log) != INSTANCE_LOG(state)) return 0;
    PyObject **dict = _PyObject_GetDictPtr(inst);
    if (dict == NULL || *dict == NULL) return 1;
    if (PyDict_GetItemWithError(*dict, str_log) != NULL) return 0;
    return PyErr_Occurred() ? -1 : 1;
}

/* inst.log(line, inst.master): the row appended to inst.log_lines as `log_raw` does
 * when there is a master, no log sink and `log` is Instance.log; else the method. */
static int
cron_log(PyObject *state, PyObject *line)
{
    PyObject *inst = CRON_INST(state), *log = NULL, *sink = NULL, *master = NULL;
    PyObject *name = NULL, *now = NULL, *row = NULL, *spool = NULL, *tail = NULL;
    int rc = -1, plain = plain_log(state, inst);
    if (plain < 0 || (sink = get(&f_log_sink, inst)) == NULL
            || (master = get(&f_master, inst)) == NULL) goto out;
    if (sink != Py_None || master == Py_None || !plain) {  /* uwsgi_log_verbose: dated */
        if ((log = PyObject_GetAttr(inst, plain ? str_log_dated : str_log)) == NULL)
            goto out;
        PyObject *call_args[] = {line, master};
        PyObject *done = PyObject_Vectorcall(log, call_args, 2, NULL);
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
        goto out;
    }
    if ((name = get(&f_name, master)) == NULL
            || (now = get(&f_now, CRON_KERNEL(state))) == NULL
            || (row = PyTuple_Pack(3, now, name, line)) == NULL
            || (spool = get(&f_log_lines, inst)) == NULL
            || (tail = get(&f_tail, spool)) == NULL) goto out;
    if (PyFloat_CheckExact(now) && PyUnicode_CheckExact(name)) {
        PyObject_GC_UnTrack(row);  /* plain values: no cycle (the collector would untrack
                                    * it at its first pass; until then every young
                                    * collection visits the rows the log holds) */
    }
    /* Spool.append: tail.append(row); if len(tail) >= limit: spool.spill() */
    long long limit;
    int is_int;
    if (!PyList_Check(tail) || PyList_Append(tail, row) < 0
            || (is_int = get_int(&f_limit, spool, &limit)) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a spool's tail is a list");
        goto out;
    }
    if (!is_int) {
        PyErr_SetString(PyExc_TypeError, "a spool's limit is an int");
        goto out;
    }
    rc = PyList_GET_SIZE(tail) >= limit ? call_void3(spool, str_spill, NULL, NULL, NULL) : 0;
out:
    Py_XDECREF(log);
    Py_XDECREF(sink);
    Py_XDECREF(master);
    Py_XDECREF(name);
    Py_XDECREF(now);
    Py_XDECREF(row);
    Py_XDECREF(spool);
    Py_XDECREF(tail);
    return rc;
}

/* Cron._fire_signal(spec, wall_s). */
static int
fire_signal(PyObject *state, PyObject *spec, PyObject *wall_s)
{
    PyObject *sig = NULL, *line = NULL, *now = NULL, *fields = NULL;
    PyObject *done = NULL, *subsystems = NULL, *signals = NULL;
    int rc = -1;
    if ((sig = get(&f_sig, spec)) == NULL
            || (line = cron_line(state, wall_s, sig)) == NULL
            || cron_log(state, line) < 0
            || (now = get(&f_now, CRON_KERNEL(state))) == NULL
            || (fields = record_fields(str_cron_signal, str_num, sig, NULL, NULL)) == NULL)
        goto out;
    PyObject *args[] = {CRON_TRACE(state), now, str_master, str_cron_signal, fields};
    done = PyObject_VectorcallMethod(str_add, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (done == NULL || set(&f_last_job, spec, wall_s) < 0
            || set(&f_plan, spec, Py_None) < 0
            || (subsystems = get(&f_subsystems, CRON_INST(state))) == NULL) goto out;
    if (PyDict_CheckExact(subsystems)) {  /* inst.subsystems.get("signals") */
        signals = PyDict_GetItemWithError(subsystems, str_signals);
        if (signals == NULL && PyErr_Occurred()) goto out;
        signals = Py_NewRef(signals != NULL ? signals : Py_None);
    } else {
        signals = PyObject_CallMethodOneArg(subsystems, str_get, str_signals);
        if (signals == NULL) goto out;
    }
    rc = signals == Py_None ? 0 : call_void3(signals, str_route, sig, NULL, NULL);
out:
    Py_XDECREF(sig);
    Py_XDECREF(line);
    Py_XDECREF(now);
    Py_XDECREF(fields);
    Py_XDECREF(done);
    Py_XDECREF(subsystems);
    Py_XDECREF(signals);
    return rc;
}

/* Cron._due(spec, wall_s): 1, 0, -1 on error (an entry with a field to match, or odd
 * values: the Python method). */
static int
due(PyObject *state, PyObject *spec, PyObject *wall_s)
{
    long long last_job, now_s = 0;
    int overflow = 0, known = PyLong_CheckExact(wall_s);
    if (known) {
        now_s = PyLong_AsLongLongAndOverflow(wall_s, &overflow);
        if (now_s == -1 && PyErr_Occurred()) return -1;
        known = !overflow;
    }
    if (known && (known = get_int(&f_last_job, spec, &last_job)) == 1) {
        if (now_s - last_job < 60) return 0;  /* it ran less than a minute ago */
        known = get_true(&f_always, spec);
    }
    if (known != 0) return known;  /* 1: every field "any", or -1 */
    PyObject *found = call_method3(CRON(state), str_due, spec, wall_s, NULL);
    if (found == NULL) return -1;
    int truth = PyObject_IsTrue(found);
    Py_DECREF(found);
    return truth;
}

static PyObject *
cron_before_events_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    if (arity(nargs, 3, 3, kwnames, "before_events(loop, wall_s, timeout)") < 0) return NULL;
    PyObject *crons = SIGNAL_CRONS(state), *wall_s = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(crons); i++) {
        PyObject *spec = Py_NewRef(PyList_GET_ITEM(crons, i));
        int rc = due(state, spec, wall_s);
        if (rc > 0) rc = fire_signal(state, spec, wall_s);
        Py_DECREF(spec);
        if (rc < 0) return NULL;
    }
    if (PyList_GET_SIZE(COMMAND_CRONS(state))
            && call_void3(CRON(state), str_before_commands, args[0], wall_s, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Cron.plan(spec, loop): computed here for an entry whose fields are all "any" (its
 * first candidate fires) with the usual types; the Python method otherwise. */
static PyObject *
cron_plan(PyObject *state, PyObject *spec, PyObject *loop)
{
    long long interval = 0, last_job = 0;
    double now = 0, last_wake = 0, wall_offset = 0;
    int rc = get_true(&f_always, spec);
    if (rc == 1) rc = get_int(&f_interval, loop, &interval);
    if (rc == 1 && interval > 0) rc = get_int(&f_last_job, spec, &last_job);
    else if (rc == 1) rc = 0;
    if (rc == 1) rc = get_float(&f_now, CRON_KERNEL(state), &now);
    if (rc == 1) rc = get_float(&f_last_wake, loop, &last_wake);
    if (rc == 1) rc = get_float(&f_wall_offset, CRON_CLOCK(state), &wall_offset);
    if (rc < 0) return NULL;
    if (rc == 0) return call_method3(CRON(state), str_plan, spec, loop, NULL);
    /* loop.first_wake_index() */
    double k = floor((now - last_wake) / (double)interval + 1e-12) + 1;
    long long k0 = k < 1 ? 1 : (long long)k;
    double t0 = last_wake + (double)(k0 * interval);
    long long s0 = (long long)floor(wall_offset + t0);
    long long lo = last_job + 60 > s0 ? last_job + 60 : s0;
    long long j = (lo - s0 + interval - 1) / interval;  /* -(-(lo - s0) // interval) */
    return PyFloat_FromDouble(t0 + (double)(j * interval));
}

/* One entry's turn in Cron.next_wake: its plan, re-planned when stale (borrowed
 * `epoch`, `offset`, `now`; a new reference). */
static PyObject *
spec_wake(PyObject *state, PyObject *spec, PyObject *loop, PyObject *epoch,
          PyObject *offset, PyObject *now)
{
    PyObject *last_job = get(&f_last_job, spec), *key = NULL;
    PyObject *plan_key = NULL, *plan = NULL;
    if (last_job == NULL || (key = PyTuple_Pack(3, epoch, offset, last_job)) == NULL
            || (plan_key = get(&f_plan_key, spec)) == NULL) goto out;
    int stale = PyObject_RichCompareBool(plan_key, key, Py_NE);
    if (stale < 0 || (plan = get(&f_plan, spec)) == NULL) goto out;
    if (!stale && plan != Py_None) {
        stale = PyObject_RichCompareBool(plan, now, Py_LE);  /* already past */
        if (stale < 0) goto out;
    }
    if (stale) {  /* planned for another grid, clock or last firing, or already past */
        Py_SETREF(plan, cron_plan(state, spec, loop));
        if (plan == NULL || set(&f_plan, spec, plan) < 0
                || set(&f_plan_key, spec, key) < 0) goto out;
        Py_SETREF(plan, get(&f_plan, spec));
    }
out:
    Py_XDECREF(last_job);
    Py_XDECREF(key);
    Py_XDECREF(plan_key);
    if (PyErr_Occurred()) Py_CLEAR(plan);
    return plan;
}

/* `if self._zone is not time.tzname`: the zone it is, and every plan made again. */
static int
zone_check(PyObject *state, PyObject *const *tables)
{
    PyObject *cron = CRON(state), *zone = get(&f__zone, cron);
    if (zone == NULL) return -1;
    Py_DECREF(zone);
    PyObject *now = PyDict_GetItemWithError(time_dict, str_tzname);  /* borrowed */
    if (now == zone) return 0;
    if (now == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_AttributeError, "time.tzname");
        return -1;
    }
    if (set(&f__zone, cron, now) < 0) return -1;
    for (int t = 0; t < 2; t++) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tables[t]); i++) {
            if (set(&f_plan_key, PyList_GET_ITEM(tables[t], i), Py_None) < 0) return -1;
        }
    }
    return 0;
}

static PyObject *
cron_next_wake_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    if (arity(nargs, 1, 1, kwnames, "next_wake(loop)") < 0) return NULL;
    PyObject *loop = args[0], *best = Py_NewRef(Py_None);
    PyObject *now = NULL, *epoch = NULL, *offset = NULL;
    PyObject *tables[] = {SIGNAL_CRONS(state), COMMAND_CRONS(state)};
    if (zone_check(state, tables) < 0 || (now = get(&f_now, CRON_KERNEL(state))) == NULL
            || (epoch = get(&f_grid_epoch, loop)) == NULL
            || (offset = get(&f_wall_offset, CRON_CLOCK(state))) == NULL) goto fail;
    for (int t = 0; t < 2; t++) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tables[t]); i++) {
            PyObject *spec = Py_NewRef(PyList_GET_ITEM(tables[t], i));
            PyObject *when = spec_wake(state, spec, loop, epoch, offset, now);
            Py_DECREF(spec);
            if (when == NULL) goto fail;
            int earlier = when == Py_None ? 0
                          : best == Py_None ? 1 : PyObject_RichCompareBool(when, best, Py_LT);
            if (earlier > 0) Py_SETREF(best, when);
            else Py_DECREF(when);
            if (earlier < 0) goto fail;
        }
    }
    Py_DECREF(now);
    Py_DECREF(epoch);
    Py_DECREF(offset);
    return best;
fail:
    Py_XDECREF(now);
    Py_XDECREF(epoch);
    Py_XDECREF(offset);
    Py_DECREF(best);
    return NULL;
}

/* Cron.at_top(loop, wall_s): nothing to do (a builtin costs the loop less than the
 * Python method's frame). */
static PyObject *
cron_at_top(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (arity(nargs, 2, 2, NULL, "at_top(loop, wall_s)") < 0) return NULL;
    Py_RETURN_NONE;
}

/* -- the timers ------------------------------------------------------------------------ */

#define TIMERS(s) ITEM(s, 0)
#define TIMERS_INST(s) ITEM(s, 1)
#define TIMERS_KERNEL(s) ITEM(s, 2)
#define TIMERS_LOOP(s) ITEM(s, 3)
#define TIMERS_STATE_SIZE 4

static PyObject *
timer_fired_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (arity(nargs, 1, 1, kwnames, "_timer_fired(timer)") < 0) return NULL;
    PyObject *timers = TIMERS(state), *loop = TIMERS_LOOP(state), *t = args[0];
    int stopped = get_true(&f_stopped, TIMERS_INST(state));
    if (stopped == 0) stopped = get_true(&f_closed, loop);
    if (stopped) return stopped < 0 ? NULL : Py_NewRef(Py_None);  /* disarmed */
    PyObject *value = NULL, *secs = NULL, *next = NULL, *callback = NULL, *signals = NULL;
    PyObject *num = NULL, *result = NULL;
    if ((value = get(&f_fired, t)) == NULL) goto out;
    Py_SETREF(value, PyNumber_Add(value, one));
    if (value == NULL || set(&f_fired, t, value) < 0
            || (secs = get(&f_secs, t)) == NULL
            || (next = get(&f_next, t)) == NULL) goto out;
    Py_SETREF(next, PyNumber_InPlaceAdd(next, secs));
    if (next == NULL || set(&f_next, t, next) < 0
            || (callback = get(&f__timer_fired, timers)) == NULL
            || call_void3(TIMERS_KERNEL(state), str_post_at, next, callback, t) < 0
            || (signals = get(&f__signals, timers)) == NULL) goto out;
    int found = PyObject_IsTrue(signals);
    if (found < 0) goto out;
    if (!found) {
        Py_SETREF(signals, call_method3(timers, str_signals_subsystem, NULL, NULL, NULL));
        if (signals == NULL) goto out;
    }
    if ((num = get(&f_num, t)) == NULL) goto out;
    if (signals != Py_None) {  /* an event of the master's loop, as a signal byte read is */
        result = call_method3(signals, str_master_read, num, str_timer_fire, NULL);
    } else {
        PyObject *route = get(&f__route, timers);
        if (route == NULL) goto out;
        result = call_method3(loop, str_event, route, num, str_timer_fire);
        Py_DECREF(route);
    }
    if (result != NULL) Py_SETREF(result, Py_NewRef(Py_None));
out:
    Py_XDECREF(value);
    Py_XDECREF(secs);
    Py_XDECREF(next);
    Py_XDECREF(callback);
    Py_XDECREF(signals);
    Py_XDECREF(num);
    return result;
}

/* -- the module ------------------------------------------------------------------------ */

static PyMethodDef defs[] = {
    {"event", FASTCALL(event_call), NULL},
    {"_iterate", FASTCALL(iterate_call), NULL},
    {"replan", FASTCALL(replan_call), NULL},
    {"_idle_wake", FASTCALL(idle_wake_call), NULL},
    {"before_events", FASTCALL(cron_before_events_call), NULL},
    {"next_wake", FASTCALL(cron_next_wake_call), NULL},
    {"_timer_fired", FASTCALL(timer_fired_call), NULL},
};

/* The builtin function defs[index] over `state`, a tuple of `size` items whose item
 * `list_at` (and `list_at2`, unless -1) is a list. */
static PyObject *
make(int index, PyObject *state, Py_ssize_t size, int list_at, int list_at2)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != size
            || !PyList_CheckExact(ITEM(state, list_at))
            || (list_at2 >= 0 && !PyList_CheckExact(ITEM(state, list_at2)))) {
        PyErr_Format(PyExc_TypeError, "%s: not the state its Python class builds",
                     defs[index].ml_name);
        return NULL;
    }
    return PyCFunction_NewEx(&defs[index], state, NULL);
}

#define MAKER(name, index, size, list_at, list_at2) \
    static PyObject * \
    new_##name(PyObject *module, PyObject *state) \
    { return make(index, state, size, list_at, list_at2); }

MAKER(event, 0, LOOP_STATE_SIZE, 4, -1)
MAKER(iterate, 1, LOOP_STATE_SIZE, 4, -1)
MAKER(replan, 2, LOOP_STATE_SIZE, 4, -1)
MAKER(idle_wake, 3, LOOP_STATE_SIZE, 4, -1)
MAKER(cron_before_events, 4, CRON_STATE_SIZE, 4, 5)
MAKER(cron_next_wake, 5, CRON_STATE_SIZE, 4, 5)

static PyObject *
new_timer_fired(PyObject *module, PyObject *state)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != TIMERS_STATE_SIZE) {
        PyErr_SetString(PyExc_TypeError, "_timer_fired: not the state Timers builds");
        return NULL;
    }
    return PyCFunction_NewEx(&defs[6], state, NULL);
}

static PyMethodDef methods[] = {
    {"event", new_event, METH_O, "MasterLoop.event's twin."},
    {"iterate", new_iterate, METH_O, "MasterLoop._iterate's twin."},
    {"replan", new_replan, METH_O, "MasterLoop.replan's twin."},
    {"idle_wake", new_idle_wake, METH_O, "MasterLoop._idle_wake's twin."},
    {"cron_before_events", new_cron_before_events, METH_O, "Cron.before_events's twin."},
    {"cron_next_wake", new_cron_next_wake, METH_O, "Cron.next_wake's twin."},
    {"cron_at_top", (PyCFunction)(void (*)(void))cron_at_top, METH_FASTCALL,
     "Cron.at_top's twin (nothing to do)."},
    {"timer_fired", new_timer_fired, METH_O, "Timers._timer_fired's twin."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cmaster",
    "C accelerator for simuwsgi's master loop, cron and timers (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cmaster(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    FIELDS(FIELD_INTERN)
    INTERN(str_before_events, "before_events") INTERN(str_at_top, "at_top")
    INTERN(str_next_wake, "next_wake") INTERN(str_post_at, "post_at") INTERN(str_due, "_due")
    INTERN(str_plan, "plan") INTERN(str_before_commands, "_before_commands")
    INTERN(str_asctime, "asctime") INTERN(str_spill, "spill") INTERN(str_add, "add")
    INTERN(str_cron_signal, "cron.signal") INTERN(str_num, "num")
    INTERN(str_signals, "signals") INTERN(str_route, "route") INTERN(str_get, "get")
    INTERN(str_signals_subsystem, "_signals_subsystem")
    INTERN(str_master_read, "master_read") INTERN(str_timer_fire, "timer.fire")
    INTERN(str_event, "event") INTERN(str_master, "master") INTERN(str_log, "log") INTERN(str_log_dated, "log_dated")
    INTERN(str_tzname, "tzname")
#undef INTERN
    if ((time_dict = module_dict("time")) == NULL) return NULL;
    if ((one = PyLong_FromLong(1)) == NULL) return NULL;
    return PyModule_Create(&module);
}
