/*
 * Optional C accelerator for a simulated request's bookkeeping (simuwsgi.server.workers).
 *
 * A request is dispatched to an idle worker (`dispatch_request`, `take_idle_worker`),
 * taken by the core waiting in its accept loop (`core_loop`), then served
 * (`handle_request`: the vars, the `request.start` and `request.end` records, the
 * counters, `Request.finish`, the log line, the max-requests check). This module makes
 * builtin functions of their common case, step for step what the Python code does for
 * it, and hands every other call to the Python function (the twin:
 * `_dispatch_request_py`, `_handle_request_py`, `_log_request`, `_queue_request`,
 * `_leave` in the module), which stays the one place where the rarer cases live:
 *
 *   dispatch_request(inst, req)   an instance neither stopped nor cheap, without
 *       --thunder-lock or a worker that refused (uwsgi.accepting): the `request.submit`
 *       record, the pick of an idle worker (the seeded RNG's `_randbelow`, and the
 *       `choice` record) and its wake-up; no idle worker: `_queue_request`.
 *   handle_request(inst, w, req)  a request from a driver, or from the network but not
 *       for a control plugin (rpc, signal, cache, spool), not in fork mode, whose vars
 *       pass the HTTP parser's size check (a driver's) and need none of
 *       `Reading.parse_vars`' steps (--limit-post, --post-buffering,
 *       --manage-script-name, static files, too many vars): everything but the app's
 *       call, which is `workers._call_app` (looked up per request: a C twin may
 *       replace it). The log line is written here when it is the default line
 *       (no --logformat, --log-x-forwarded-for, logvars or log_this_request), through
 *       `inst.log_raw` when a log sink is set; else `_log_request` writes it.
 *   core_loop(inst, core)         the accept loop of a core, all of it: the mutex among
 *       a worker's threads, the signals first (`signals.run_handler`), then the listen
 *       queue, else idle in `inst.idle_workers` until woken; `_leave` at the end.
 *
 * `setup(workers_globals, reqlog_globals)` gives the module the names it calls.
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "../_core/_cutil.h"
#include "_cattr.h"

#define NAMES(X) \
    X(kernel) X(now) X(current) X(name) X(trace) X(add) X(stopped) X(is_cheap) \
    X(thunder_lock) X(some_refuse) X(idle_workers) X(rng) X(getrandbits) X(idle) \
    X(wake) X(acceptor) X(id) X(method) X(path) X(what) X(among) X(picked) X(forks) \
    X(net) X(_reading) X(limit_post) X(post_buffering) X(manage_script_name) X(static) X(routes) \
    X(final_routes) X(exceptions) X(after_req_hook) \
    X(appended_vars) X(_vars) X(_pktsize) X(uwsgi_framing) X(buffer_size) X(max_vars) \
    X(vars) X(status) X(request) X(worker) X(started) X(threads) X(core) X(clock) \
    X(wall_offset) X(wall) X(harakiri) X(arm_harakiri) X(env_vars) X(app) X(lazy_apps) \
    X(apps) X(mountpoints) X(default_app) X(app_id) X(app_local_requests) X(requests) \
    X(delta_requests) X(core_counts) X(total_requests) X(app_requests) X(running_time) \
    X(avg_rt) X(tx) X(harakiri_deadline) X(user_harakiri_deadline) \
    X(_reschedule_harakiri) X(exception) X(bytes) X(done) X(conn) X(raw) X(altered) \
    X(finish) X(headers) X(body) X(reason) X(finished) X(response) X(on_done) \
    X(memory_report) X(reload_on_rss) X(reload_on_as) X(evil_reload_on_rss) \
    X(evil_reload_on_as) X(publish_request_memory) X(max_requests) \
    X(max_requests_delta) X(last_spawn) X(min_worker_lifetime) X(measure_memory) \
    X(main) X(subsystems) X(misc) X(_states) X(opts) X(_seen) X(items) X(length) \
    X(memo) X(status_code) X(response_size) X(headers_size) X(header_cnt) X(switches) \
    X(via_sendfile) X(var_cnt) X(var_slots) X(remote_addr) X(protocol) X(pid) \
    X(rss_size) X(vsz_size) X(tzname) X(log_sink) X(log_lines) X(append) X(log_raw) \
    X(_call_app) X(_handle_request_py) X(_dispatch_request_py) X(_queue_request) \
    X(_log_request) X(goodbye) X(Request) X(Response) X(policy) X(_ctime) \
    X(_last_ctime) X(_leave) X(manage_next_request) X(park) X(popleft) X(accepting) \
    X(run_handler) X(handle_request) X(signals) X(signal_queue) X(shared_workers) \
    X(listen_queue) X(mutex_waiters) X(pop) X(tail) X(limit) X(spill) X(packet_vars) X(_tx) \
    X(shapes) X(chunked) X(_randbelow) X(__dict__) X(control) X(text_vars) \
    X(_take_idle_worker_py) X(ident) X(closed) X(_watchdog) X(driving) X(_request_ids) \
    X(_ensure_started) X(inst) X(call_soon) X(post_at) X(dispatch_request) X(submitted) \
    X(body_length) X(upper) X(__init__) X(_days) X(_lo) X(_hi) X(_base) X(_day) X(_year) \
    X(_zone)

#define DECLARE(n) static PyObject *s_##n; ATTR_DECLARE(n)
NAMES(DECLARE)
static PyObject *s_request_start, *s_request_end, *s_request_submit, *s_choice;
static PyObject *s_accept, *s_req, *s_busy, *s_master, *s_empty, *s_script_name;
static PyObject *s_raised, *s_not_called, *s_reqlog_key;
static PyObject *s_sig, *s_for_mutex;
static PyObject *zero, *one, *two, *zero_float, *empty_args;

/* The module dicts of workers and reqlog (setup), and the `time` module's dict. */
static PyObject *workers_globals, *reqlog_globals, *time_dict;
/* random.Random (whose `_randbelow` this module draws as it does), VirtualClock. */
static PyTypeObject *Random, *VirtualClock;
/* simuwsgi._core._spool.Spool, whose `append` this module does as it does. */
static PyTypeObject *Spool;

/* -- helpers ------------------------------------------------------------------------- */

/* The new references of one call, released together at its end. */
#define MAX_OWNED 256
typedef struct {
    PyObject *refs[MAX_OWNED];
    int count;
} Owned;

/* Keeps `obj` (a new reference, or NULL after an error) to release at the end. */
static PyObject *
keep(Owned *own, PyObject *obj)
{
    if (obj != NULL) {
        if (own->count == MAX_OWNED) Py_FatalError("_creq: too many references kept");
        own->refs[own->count++] = obj;
    }
    return obj;
}

static void
release(Owned *own)
{
    while (own->count) Py_DECREF(own->refs[--own->count]);
}

#define GET(o, n) keep(own, attr_get(&a_##n, (o)))

/* A name of the workers or reqlog module (borrowed), or NULL with an error set. */
static PyObject *
global(PyObject *globals, PyObject *name)
{
    PyObject *found = PyDict_GetItemWithError(globals, name);
    if (found == NULL && !PyErr_Occurred()) PyErr_SetObject(PyExc_NameError, name);
    return found;
}

/* 1 when `obj` is true, 0 false, -1 error (NULL: an error already set). */
static int
truth(PyObject *obj)
{
    return obj == NULL ? -1 : PyObject_IsTrue(obj);
}

/* setattr(obj, name, obj.name + 1): 0, or -1 on error. */
static int
increment(PyObject *obj, Attr *name)
{
    PyObject *value = attr_get(name, obj);
    if (value == NULL) return -1;
    Py_SETREF(value, PyNumber_Add(value, one));
    if (value == NULL) return -1;
    int rc = attr_set(name, obj, value);
    Py_DECREF(value);
    return rc;
}

/* counts[key] = counts.get(key, 0) + 1 for a dict `counts`. */
static int
count_in(PyObject *counts, PyObject *key)
{
    if (counts == NULL) return -1;
    if (!PyDict_Check(counts)) {
        PyErr_SetString(PyExc_TypeError, "_creq: a request count that is not a dict");
        return -1;
    }
    PyObject *value = PyDict_GetItemWithError(counts, key);
    if (value == NULL && PyErr_Occurred()) return -1;
    value = PyNumber_Add(value != NULL ? value : zero, one);
    if (value == NULL) return -1;
    int rc = PyDict_SetItem(counts, key, value);
    Py_DECREF(value);
    return rc;
}

/* trace.add(when, who, kind, fields). */
static int
record(PyObject *trace, PyObject *when, PyObject *who, PyObject *kind, PyObject *fields)
{
    PyObject *args[] = {trace, when, who, kind, fields};
    PyObject *done = PyObject_VectorcallMethod(s_add, args,
                                               5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

/* {id: req.id, method: req.method, path: req.path}, the fields of two records. */
static PyObject *
request_fields(Owned *own, PyObject *req)
{
    PyObject *id = GET(req, id), *method = GET(req, method), *path = GET(req, path);
    if (id == NULL || method == NULL || path == NULL) return NULL;
    PyObject *fields = keep(own, PyDict_New());
    if (fields == NULL || PyDict_SetItem(fields, s_id, id) < 0
            || PyDict_SetItem(fields, s_method, method) < 0
            || PyDict_SetItem(fields, s_path, path) < 0) return NULL;
    return fields;
}

/* Python's round(x) of a float (ties to even), as an int. */
static PyObject *
round_to_int(double x)
{
    double rounded = round(x);
    if (fabs(x - rounded) == 0.5) rounded = 2.0 * round(x / 2.0);
    return PyLong_FromDouble(rounded);
}

/* int(round((end - started) * 1_000_000)): a request's time in microseconds. */
static PyObject *
elapsed_micros(PyObject *end, PyObject *started)
{
    PyObject *diff = PyNumber_Subtract(end, started), *result = NULL;
    if (diff == NULL) return NULL;
    if (PyFloat_CheckExact(diff)) {
        result = round_to_int(PyFloat_AS_DOUBLE(diff) * 1000000.0);
    } else {  /* not floats: Python's own arithmetic */
        PyObject *million = PyLong_FromLong(1000000), *scaled = NULL, *rounded = NULL;
        if (million != NULL && (scaled = PyNumber_Multiply(diff, million)) != NULL
                && (rounded = PyObject_CallMethod(scaled, "__round__", NULL)) != NULL)
            result = PyNumber_Long(rounded);
        Py_XDECREF(million);
        Py_XDECREF(scaled);
        Py_XDECREF(rounded);
    }
    Py_DECREF(diff);
    return result;
}

/* inst.wall(): VirtualClock.time() (`wall_offset + kernel.now`) read here for that
 * clock, else the method. */
static PyObject *
wall(Owned *own, PyObject *inst)
{
    PyObject *clock = GET(inst, clock), *offset, *kernel, *now;
    if (clock == NULL) return NULL;
    if (Py_TYPE(clock) != VirtualClock) return keep(own, call_method(inst, s_wall, NULL, NULL));
    return (offset = GET(clock, wall_offset)) == NULL || (kernel = GET(clock, kernel)) == NULL
           || (now = GET(kernel, now)) == NULL ? NULL : keep(own, PyNumber_Add(offset, now));
}

/* -- dispatch -------------------------------------------------------------------------- */

/* random.Random._randbelow_with_getrandbits(n) with the rng's own getrandbits. */
static PyObject *
randbelow(PyObject *rng, Py_ssize_t n)
{
    int k = 0;
    for (size_t v = (size_t)n; v; v >>= 1) k++;
    PyObject *bits = PyLong_FromLong(k);
    if (bits == NULL) return NULL;
    PyObject *r;
    while (1) {
        r = call_method(rng, s_getrandbits, bits, NULL);
        if (r == NULL) break;
        Py_ssize_t value = PyLong_AsSsize_t(r);
        if (value == -1 && PyErr_Occurred()) {
            Py_CLEAR(r);
            break;
        }
        if (value < n) break;
        Py_DECREF(r);
    }
    Py_DECREF(bits);
    return r;
}

/* `take_idle_worker`'s plain case (no --thunder-lock, every worker accepting), `count`
 * > 0 workers idle: idle.pop(), or idle.pop(rng._randbelow(count)) and the `choice`
 * record; the worker is no longer idle. A new reference. */
static PyObject *
pick_idle(PyObject *idle, Py_ssize_t count, PyObject *kernel, PyObject *trace,
          PyObject *now, PyObject *what)
{
    Owned owned = {.count = 0}, *own = &owned;
    PyObject *drawn = NULL, *worker = NULL;
    if (count > 1) {
        PyObject *rng = GET(kernel, rng), *n;
        if (rng == NULL || (n = keep(own, PyLong_FromSsize_t(count))) == NULL
                || (drawn = keep(own, Py_TYPE(rng) == Random ? randbelow(rng, count)
                                 : call_method(rng, s__randbelow, n, NULL))) == NULL)
            goto out;
    }
    if ((worker = call_method(idle, s_pop, drawn, NULL)) == NULL) goto out;
    if (count > 1) {
        /* _record_choice: how many were eligible and which was picked */
        PyObject *picked = GET(worker, name), *among = keep(own, PyLong_FromSsize_t(count));
        PyObject *choice = keep(own, PyDict_New());
        if (picked == NULL || among == NULL || choice == NULL
                || PyDict_SetItem(choice, s_what, what) < 0
                || PyDict_SetItem(choice, s_among, among) < 0
                || PyDict_SetItem(choice, s_picked, picked) < 0
                || record(trace, now, s_master, s_choice, choice) < 0) goto fail;
    }
    if (attr_set(&a_idle, worker, Py_False) == 0) goto out;
fail:
    Py_CLEAR(worker);
out:
    release(own);
    return worker;
}

/* `take_idle_worker(inst, what)`: its plain case in C (see pick_idle), the Python twin
 * for --thunder-lock and workers that stopped accepting. */
static PyObject *
take_idle_worker(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "take_idle_worker(inst, what)");
        return NULL;
    }
    PyObject *inst = args[0], *result = NULL;
    Owned owned = {.count = 0}, *own = &owned;
    int plain = 1;
    PyObject *flags[] = {GET(inst, thunder_lock), GET(inst, some_refuse)};
    for (int i = 0; i < 2; i++) {
        int set = truth(flags[i]);
        if (set < 0) goto out;
        if (set) plain = 0;
    }
    PyObject *idle = GET(inst, idle_workers);
    if (idle == NULL) goto out;
    if (!plain || !PyList_CheckExact(idle)) {
        PyObject *twin = global(workers_globals, s__take_idle_worker_py);
        if (twin != NULL) result = call(twin, args, 2);
        goto out;
    }
    Py_ssize_t count = PyList_GET_SIZE(idle);
    if (count == 0) {
        result = Py_NewRef(Py_None);
        goto out;
    }
    PyObject *kernel = GET(inst, kernel), *trace = GET(inst, trace), *now;
    if (kernel == NULL || trace == NULL || (now = GET(kernel, now)) == NULL) goto out;
    result = pick_idle(idle, count, kernel, trace, now, args[1]);
out:
    release(own);
    return result;
}

static PyObject *
dispatch_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "dispatch_request(inst, req)");
        return NULL;
    }
    PyObject *inst = args[0], *req = args[1], *result = NULL;
    Owned owned = {.count = 0}, *own = &owned;
    int plain = 1;
    PyObject *flags[] = {GET(inst, stopped), GET(inst, is_cheap), GET(inst, thunder_lock),
                         GET(inst, some_refuse)};
    for (int i = 0; i < 4; i++) {
        int set = truth(flags[i]);
        if (set < 0) goto out;
        if (set) plain = 0;
    }
    PyObject *idle = GET(inst, idle_workers);
    if (idle == NULL) goto out;
    if (!plain || !PyList_CheckExact(idle)) {
        PyObject *twin = global(workers_globals, s__dispatch_request_py);
        if (twin != NULL) result = call(twin, args, 2);
        goto out;
    }
    PyObject *kernel = GET(inst, kernel), *trace = GET(inst, trace), *now, *proc, *who;
    if (kernel == NULL || trace == NULL || (now = GET(kernel, now)) == NULL
            || (proc = GET(kernel, current)) == NULL) goto out;
    who = proc == Py_None ? s_master : GET(proc, name);
    PyObject *fields = request_fields(own, req);
    if (who == NULL || fields == NULL
            || record(trace, now, who, s_request_submit, fields) < 0) goto out;
    Py_ssize_t count = PyList_GET_SIZE(idle);
    if (count == 0) {
        PyObject *queue = global(workers_globals, s__queue_request);
        if (queue != NULL) result = call(queue, args, 2);
        goto out;
    }
    PyObject *worker = keep(own, pick_idle(idle, count, kernel, trace, now, s_accept));
    if (worker == NULL) goto out;
    PyObject *acceptor, *message;
    if ((acceptor = GET(worker, acceptor)) == NULL
            || (message = keep(own, PyTuple_Pack(2, s_req, req))) == NULL) goto out;
    result = call_method(kernel, s_wake, acceptor, message);
out:
    release(own);
    return result;
}

/* -- the request log ------------------------------------------------------------------- */

/* `reqlog.policy(inst)`: the answer `inst.opts.memo` remembers while the options are as
 * they were (`Options._fresh`), else the Python function. A new reference. */
static PyObject *
policy(Owned *own, PyObject *inst)
{
    PyObject *opts = GET(inst, opts), *seen, *items, *seen_items, *length, *memo;
    if (opts == NULL || (seen = GET(opts, _seen)) == NULL || (items = GET(opts, items)) == NULL
            || (seen_items = GET(seen, items)) == NULL || (length = GET(seen, length)) == NULL
            || (memo = GET(seen, memo)) == NULL) return NULL;
    if (items == seen_items && PyList_Check(items) && PyLong_Check(length)
            && PyLong_AsSsize_t(length) == PyList_GET_SIZE(items) && PyDict_Check(memo)) {
        PyObject *found = PyDict_GetItemWithError(memo, s_reqlog_key);
        if (found != NULL) return keep(own, Py_NewRef(found));
        if (PyErr_Occurred()) return NULL;
    }
    PyObject *func = global(reqlog_globals, s_policy);
    return func == NULL ? NULL : keep(own, call(func, &inst, 1));
}

/* `value` as a long long: 1 when it is an exact int that fits, 0 when not, -1 error. */
static int
exact_int(PyObject *value, long long *out)
{
    int overflow = 0;
    *out = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : 0;
    if (*out == -1 && PyErr_Occurred()) return -1;
    return PyLong_CheckExact(value) && !overflow;
}

/* LocalDays.asctime(secs) when `secs` is within the day `days` holds (its slots) and
 * that day is of the zone `zone` (time.tzname): the day's text, HH:MM:SS and the year,
 * as a new reference; NULL with no error set when it is not (a new day: the Python
 * method loads it). */
static PyObject *
day_asctime(Owned *own, PyObject *days, long long secs, PyObject *zone)
{
    PyObject *lo = GET(days, _lo), *hi = GET(days, _hi), *base = GET(days, _base);
    PyObject *day = GET(days, _day), *year = GET(days, _year), *of = GET(days, _zone);
    long long from, to, origin;
    if (of != zone || lo == NULL || hi == NULL || base == NULL || day == NULL || year == NULL
            || exact_int(lo, &from) <= 0 || exact_int(hi, &to) <= 0
            || exact_int(base, &origin) <= 0 || !PyUnicode_IS_ASCII(day)
            || !PyUnicode_IS_ASCII(year)) return NULL;
    if (!(from <= secs && secs < to && 0 <= secs - origin && secs - origin < 86400))
        return NULL;
    Py_ssize_t day_len = PyUnicode_GET_LENGTH(day), year_len = PyUnicode_GET_LENGTH(year);
    long sod = (long)(secs - origin);  /* the second of the local day, < 86400 */
    PyObject *text = PyUnicode_New(day_len + 8 + year_len, 127);
    if (text == NULL) return NULL;
    char *at = (char *)PyUnicode_1BYTE_DATA(text);
    memcpy(at, PyUnicode_1BYTE_DATA(day), day_len);
    at += day_len;
    long parts[] = {sod / 3600, sod / 60 % 60, sod % 60};
    for (int i = 0; i < 3; i++) {
        *at++ = (char)('0' + parts[i] / 10);
        *at++ = (char)('0' + parts[i] % 10);
        if (i < 2) *at++ = ':';
    }
    memcpy(at, PyUnicode_1BYTE_DATA(year), year_len);
    return keep(own, text);
}

/* reqlog._ctime(wall): the text kept in `reqlog._last_ctime` for its second and time
 * zone, or the second's text from the local day `reqlog._days` holds (kept as the
 * last); else the Python function (which loads the day). Borrowed or owned. */
static PyObject *
ctime_text(Owned *own, PyObject *start_wall)
{
    PyObject *last = global(reqlog_globals, s__last_ctime), *zone, *days, *text;
    PyObject *secs = keep(own, PyNumber_Long(start_wall));
    if (last == NULL || secs == NULL || (zone = global(time_dict, s_tzname)) == NULL
            || (days = global(reqlog_globals, s__days)) == NULL)
        return NULL;
    if (PyList_CheckExact(last) && PyList_GET_SIZE(last) == 3
            && PyList_GET_ITEM(last, 1) == zone) {
        int same = PyObject_RichCompareBool(PyList_GET_ITEM(last, 0), secs, Py_EQ);
        if (same < 0) return NULL;
        if (same) return keep(own, Py_NewRef(PyList_GET_ITEM(last, 2)));
        long long s;
        if (exact_int(secs, &s) > 0 && (text = day_asctime(own, days, s, zone)) != NULL) {
            PyList_SetItem(last, 0, Py_NewRef(secs));
            PyList_SetItem(last, 2, Py_NewRef(text));
            return text;
        }
        if (PyErr_Occurred()) return NULL;
    }
    PyObject *func = global(reqlog_globals, s__ctime);
    return func == NULL ? NULL : keep(own, call(func, &start_wall, 1));
}

/* What `format(value, "")` gives, as `%S` prints it. */
static PyObject *
text(Owned *own, PyObject *value)
{
    if (value == NULL) return NULL;
    if (PyLong_CheckExact(value) || PyUnicode_CheckExact(value)) return value;
    return keep(own, PyObject_Format(value, s_empty));
}

/* Python's a // b of two ints (b > 0). */
static PyObject *
floordiv(Owned *own, PyObject *a, long b)
{
    PyObject *divisor = keep(own, PyLong_FromLong(b));
    return divisor == NULL ? NULL : keep(own, PyNumber_FloorDivide(a, divisor));
}

/* 1 when `lo <= value <= hi` (an int `value`), 0 when not, -1 error. */
static int
between(PyObject *value, long lo, long hi)
{
    int overflow;
    long v = PyLong_AsLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    return !overflow && lo <= v && v <= hi;
}

/* reqlog._should_log for a request with no log_this_request: 1, 0, -1 error. */
static int
should_log(Owned *own, PyObject *p, PyObject *status, PyObject *size, PyObject *micros,
           PyObject *via_sendfile)
{
    /* _Policy: log_zero slow log_4xx log_5xx big log_sendfile disabled ... */
    PyObject *log_zero = PyTuple_GET_ITEM(p, 0), *slow = PyTuple_GET_ITEM(p, 1);
    PyObject *big = PyTuple_GET_ITEM(p, 4);
    int set;
    if ((set = truth(log_zero)) != 0) {
        if (set < 0) return -1;
        int empty = PyObject_RichCompareBool(size, zero, Py_EQ);
        if (empty != 0) return empty;
    }
    if ((set = truth(slow)) != 0) {
        if (set < 0) return -1;
        PyObject *msecs = floordiv(own, micros, 1000);
        int slow_enough = msecs == NULL ? -1 : PyObject_RichCompareBool(msecs, slow, Py_GE);
        if (slow_enough != 0) return slow_enough;
    }
    for (int i = 2; i <= 3; i++) {  /* --log-4xx, --log-5xx */
        if ((set = truth(PyTuple_GET_ITEM(p, i))) != 0) {
            if (set < 0) return -1;
            int in = between(status, i * 100 + 200, i * 100 + 299);
            if (in != 0) return in;
        }
    }
    if ((set = truth(big)) != 0) {
        if (set < 0) return -1;
        int large = PyObject_RichCompareBool(size, big, Py_GE);
        if (large != 0) return large;
    }
    if ((set = truth(PyTuple_GET_ITEM(p, 5))) != 0) {
        if (set < 0) return -1;
        int sent = truth(via_sendfile);
        if (sent != 0) return sent;
    }
    set = truth(PyTuple_GET_ITEM(p, 6));
    return set < 0 ? -1 : !set;
}

/* The default line built in a buffer when every value is an int or an ASCII str (what
 * `%S` of them gives); NULL with no error set when one is not. */
#define LOG_LINE_MAX 4096
typedef struct {
    char text[LOG_LINE_MAX];
    Py_ssize_t len;
} Line;

static int
put(Line *line, const char *text, Py_ssize_t len)
{
    if (line->len + len > LOG_LINE_MAX) return 0;
    memcpy(line->text + line->len, text, len);
    line->len += len;
    return 1;
}

static int
put_value(Line *line, PyObject *value)
{
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)) {
        return put(line, (const char *)PyUnicode_1BYTE_DATA(value),
                   PyUnicode_GET_LENGTH(value));
    }
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    char digits[24], *end = digits + sizeof(digits), *at = end;
    unsigned long long rest = number < 0 ? 0ULL - (unsigned long long)number
                                         : (unsigned long long)number;
    do {
        *--at = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (number < 0) *--at = '-';
    return put(line, at, end - at);
}

static PyObject *
ascii_line(PyObject *mem, PyObject **values, int micro, int sendfile)
{
    /* the literal text before each of the 18 values (NULL: the time's unit, the
     * sendfile note and "("), then ")" */
    static const char *const parts[] = {
        "[pid: ", "|app: ", "|req: ", "/", "] ", " () {", " vars in ", " bytes} [", "] ",
        " ", " => generated ", " bytes in ", NULL, " ", ") ", " headers in ", " bytes (",
        " switches on core "};
    Line line;
    line.len = 0;
    if (!put_value(&line, mem)) return NULL;
    for (int i = 0; i < 18; i++) {
        const char *part = parts[i];
        if (part == NULL) {  /* after the time: its unit, then the sendfile note */
            int ok = micro ? put(&line, " micros", 7) : put(&line, " msecs", 6);
            if (!ok || !(sendfile ? put(&line, " via sendfile() ", 16) : put(&line, " ", 1)))
                return NULL;
            part = "(";
        }
        if (!put(&line, part, (Py_ssize_t)strlen(part)) || !put_value(&line, values[i]))
            return NULL;
    }
    if (!put(&line, ")", 1)) return NULL;
    PyObject *result = PyUnicode_New(line.len, 127);
    if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), line.text, line.len);
    return result;
}

/* reading.packet_size(vars): 2 + 2 length bytes per var and its text (a new
 * reference), or NULL with no error set when a key or value is not a str. */
static PyObject *
packet_size(PyObject *vars)
{
    if (!PyDict_CheckExact(vars)) return NULL;
    Py_ssize_t pos = 0, size = 4 * PyDict_GET_SIZE(vars);
    PyObject *key, *value;
    while (PyDict_Next(vars, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value)) return NULL;
        size += PyUnicode_GET_LENGTH(key) + PyUnicode_GET_LENGTH(value);
    }
    return PyLong_FromSsize_t(size);
}

/* `_log_request` for the default line: 1 written (or not logged), 0 not a case of this
 * path (the caller calls `_log_request`), -1 error. */
static int
log_default(Owned *own, PyObject *inst, PyObject *w, PyObject *req, PyObject *start_wall,
            PyObject *end, PyObject *vars)
{
    PyObject *conn = GET(req, conn), *subsystems = GET(inst, subsystems), *misc;
    if (conn == NULL || subsystems == NULL) return -1;
    if (conn == Py_None || !PyDict_Check(subsystems)) return 0;
    if ((misc = PyDict_GetItemWithError(subsystems, s_misc)) == NULL && PyErr_Occurred())
        return -1;
    if (misc != NULL) {  /* a request's logvars or log_this_request: the Python code */
        PyObject *states = GET(misc, _states);
        if (states == NULL) return -1;
        if (!PyDict_Check(states) || PyDict_GET_SIZE(states)) return 0;
    }
    PyObject *p = policy(own, inst);
    if (p == NULL) return -1;
    if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 12
            || PyTuple_GET_ITEM(p, 9) != Py_None) return 0;  /* --logformat */
    int xff = truth(PyTuple_GET_ITEM(p, 11));
    if (xff) return xff < 0 ? -1 : 0;  /* --log-x-forwarded-for */
    PyObject *app_id = GET(conn, app_id), *status = GET(conn, status_code);
    PyObject *size = GET(conn, response_size), *hsize = GET(conn, headers_size);
    PyObject *hcount = GET(conn, header_cnt), *switches = GET(conn, switches);
    PyObject *via = GET(conn, via_sendfile), *started = GET(req, started);
    if (app_id == NULL || status == NULL || size == NULL || hsize == NULL || hcount == NULL
            || switches == NULL || via == NULL || started == NULL) return -1;
    if (!PyLong_CheckExact(status)) return 0;
    /* the vars uWSGI counts: those of the packet a node received, else the request's */
    PyObject *net = GET(req, net), *own_vars = GET(req, _vars), *pktsize;
    if (net == NULL || own_vars == NULL) return -1;
    if (net != Py_None) {
        int wired = truth(GET(net, vars));
        if (wired < 0) return -1;
        if (wired && (vars = keep(own, call_method(net, s_text_vars, NULL, NULL))) == NULL)
            return -1;
    }
    if (vars == own_vars) {
        if ((pktsize = GET(req, _pktsize)) == NULL) return -1;
    } else if ((pktsize = keep(own, packet_size(vars))) == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *micros = keep(own, elapsed_micros(end, started));
    if (micros == NULL) return -1;
    int log = should_log(own, p, status, size, micros, via);
    if (log <= 0) return log < 0 ? -1 : 1;
    /* the record */
    PyObject *app_req;
    int negative = PyObject_RichCompareBool(app_id, zero, Py_LT);
    if (negative < 0) return -1;
    if (negative) {
        app_req = keep(own, PyLong_FromLong(-1));
    } else {
        PyObject *counts = GET(w, app_local_requests);
        if (counts == NULL) return -1;
        if (!PyDict_Check(counts)) return 0;
        app_req = PyDict_GetItemWithError(counts, app_id);
        if (app_req == NULL && PyErr_Occurred()) return -1;
        if (app_req == NULL) app_req = zero;
    }
    PyObject *var_cnt = GET(req, var_cnt);
    if (var_cnt == NULL || app_req == NULL) return -1;
    int counted = PyObject_RichCompareBool(var_cnt, zero, Py_GE);
    if (counted < 0) return -1;
    if (!counted) {  /* 2 * (len(vars_) + len(req.appended_vars) + req.var_slots) */
        PyObject *slots = GET(req, var_slots), *n;
        if (slots == NULL || (n = keep(own, PyLong_FromSsize_t(PyDict_GET_SIZE(vars)))) == NULL
                || (n = keep(own, PyNumber_Add(n, slots))) == NULL
                || (var_cnt = keep(own, PyNumber_Multiply(two, n))) == NULL) return -1;
    }
    PyObject *pid = GET(w, pid), *total = GET(inst, total_requests);
    PyObject *addr = GET(req, remote_addr), *method = GET(req, method), *uri = GET(req, path);
    PyObject *proto = GET(req, protocol), *core = GET(w, core);
    PyObject *date = ctime_text(own, start_wall);
    int micro = truth(PyTuple_GET_ITEM(p, 7)), memory = truth(PyTuple_GET_ITEM(p, 8));
    int sendfile = truth(via);
    if (pid == NULL || total == NULL || addr == NULL || method == NULL || uri == NULL
            || proto == NULL || core == NULL || date == NULL || micro < 0 || memory < 0
            || sendfile < 0) return -1;
    PyObject *rt = micro ? micros : floordiv(own, micros, 1000);
    PyObject *mem = s_empty;
    if (memory) {
        PyObject *vsz = GET(w, vsz_size), *rss = GET(w, rss_size), *vsz_mb, *rss_mb;
        if (vsz == NULL || rss == NULL
                || (vsz_mb = floordiv(own, floordiv(own, vsz, 1024), 1024)) == NULL
                || (rss_mb = floordiv(own, floordiv(own, rss, 1024), 1024)) == NULL
                || (mem = keep(own, PyUnicode_FromFormat(
                    "{address space usage: %S bytes/%SMB} {rss usage: %S bytes/%SMB} ",
                    text(own, vsz), text(own, vsz_mb), text(own, rss),
                    text(own, rss_mb)))) == NULL) return -1;
    }
    PyObject *values[] = {pid, app_id, app_req, total, addr, var_cnt, pktsize, date, method,
                          uri, size, rt, proto, status, hcount, hsize, switches, core};
    PyObject *line = keep(own, ascii_line(mem, values, micro, sendfile));
    if (line == NULL && !PyErr_Occurred()) {  /* not all ASCII: format's own way */
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            if ((values[i] = text(own, values[i])) == NULL) return -1;
        }
        line = keep(own, PyUnicode_FromFormat(
            "%U[pid: %S|app: %S|req: %S/%S] %S () {%S vars in %S bytes} [%S] %S %S => "
            "generated %S bytes in %S %s%s(%S %S) %S headers in %S bytes (%S switches on "
            "core %S)", mem, values[0], values[1], values[2], values[3], values[4],
            values[5], values[6], values[7], values[8], values[9], values[10], values[11],
            micro ? "micros" : "msecs", sendfile ? " via sendfile() " : " ", values[12],
            values[13], values[14], values[15], values[16], values[17]));
    }
    if (line == NULL) return -1;
    /* inst.log_raw(line, w, request=True): with no log sink, the row appended here */
    PyObject *sink = GET(inst, log_sink), *own_dict = GET(inst, __dict__);
    if (sink == NULL || own_dict == NULL) return -1;
    int replaced = PyDict_Check(own_dict) ? PyDict_Contains(own_dict, s_log_raw) : 1;
    if (replaced < 0) return -1;
    if (sink != Py_None || replaced) {
        PyObject *call_args[] = {inst, line, w, Py_True};
        PyObject *names = keep(own, Py_BuildValue("(s)", "request"));
        if (names == NULL) return -1;
        PyObject *done = keep(own, PyObject_VectorcallMethod(
            s_log_raw, call_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, names));
        return done == NULL ? -1 : 1;
    }
    PyObject *lines = GET(inst, log_lines), *kernel = GET(inst, kernel), *now, *who, *row;
    int named;
    if (lines == NULL || kernel == NULL || (now = GET(kernel, now)) == NULL
            || (named = truth(w)) < 0) return -1;
    who = named ? GET(w, name) : s_master;
    if (who == NULL || (row = keep(own, PyTuple_Pack(3, now, who, line))) == NULL) return -1;
    if (Py_TYPE(lines) != Spool)
        return keep(own, call_method(lines, s_append, row, NULL)) == NULL ? -1 : 1;
    /* Spool.append: onto its tail, spilled when full */
    PyObject *tail = GET(lines, tail), *limit;
    if (tail == NULL || (limit = GET(lines, limit)) == NULL) return -1;
    if (!PyList_CheckExact(tail) || !PyLong_Check(limit))
        return keep(own, call_method(lines, s_append, row, NULL)) == NULL ? -1 : 1;
    if (PyList_Append(tail, row) < 0) return -1;
    Py_ssize_t most = PyLong_AsSsize_t(limit);
    if (most == -1 && PyErr_Occurred()) return -1;
    if (PyList_GET_SIZE(tail) >= most && keep(own, call_method(lines, s_spill, NULL, NULL)) == NULL)
        return -1;
    return 1;
}

/* -- Request.finish -------------------------------------------------------------------- */

/* req.finish(status, headers, body, end, reason) for a driver's request whose
 * connection was not altered: `Response._of` and the `on_done` call made here. */
static int
finish(Owned *own, PyObject *req, PyObject *status, PyObject *headers, PyObject *body,
       PyObject *end, PyObject *reason)
{
    PyObject *request_type = global(workers_globals, s_Request);
    PyObject *response_type = global(workers_globals, s_Response);
    if (request_type == NULL || response_type == NULL) return -1;
    PyObject *conn = NULL, *altered = NULL;
    int plain = Py_TYPE(req) == (PyTypeObject *)request_type && PyType_Check(response_type);
    if (plain) {
        int done = truth(GET(req, done));
        if (done) return done < 0 ? -1 : 0;
        if ((conn = GET(req, conn)) == NULL) return -1;
        plain = conn != Py_None;
    }
    if (plain) {
        int changed = truth(altered = GET(conn, altered));
        if (changed < 0) return -1;
        plain = !(changed && status == Py_None);
    }
    if (!plain) {
        PyObject *args[] = {req, status, headers, body, end, reason};
        PyObject *done = PyObject_VectorcallMethod(s_finish, args,
                                                   6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    if (attr_set(&a_done, req, Py_True) < 0) return -1;
    PyObject *raw = GET(conn, raw), *worker = GET(req, worker), *started = GET(req, started);
    PyObject *empty = keep(own, PyTuple_New(0)), *response, *fields;
    if (raw == NULL || worker == NULL || started == NULL || empty == NULL) return -1;
    /* Response._of: object.__new__(Response), its __dict__ filled */
    response = keep(own, PyBaseObject_Type.tp_new((PyTypeObject *)response_type, empty, NULL));
    if (response == NULL || (fields = keep(own, PyObject_GenericGetDict(response, NULL))) == NULL
            || PyDict_SetItem(fields, s_status, status) < 0
            || PyDict_SetItem(fields, s_headers, headers) < 0
            || PyDict_SetItem(fields, s_body, body) < 0
            || PyDict_SetItem(fields, s_reason, reason) < 0
            || PyDict_SetItem(fields, s_worker, worker) < 0
            || PyDict_SetItem(fields, s_started, started) < 0
            || PyDict_SetItem(fields, s_finished, end) < 0
            || PyDict_SetItem(fields, s_raw, raw) < 0
            || attr_set(&a_response, req, response) < 0) return -1;
    PyObject *on_done = GET(req, on_done);
    if (on_done == NULL || attr_set(&a_on_done, req, Py_None) < 0) return -1;
    if (on_done != Py_None && keep(own, PyObject_CallNoArgs(on_done)) == NULL) return -1;
    return 0;
}

/* -- handle_request -------------------------------------------------------------------- */

/* `packet_vars` for a request of a shape `reading.shapes` knows: its vars (req._vars and
 * req._pktsize set), or NULL (with an error set, or none: packet_vars' case). */
static PyObject *
known_shape(Owned *own, PyObject *reading, PyObject *req)
{
    PyObject *shapes = GET(reading, shapes), *headers = GET(req, headers);
    PyObject *parts[] = {GET(req, method), GET(req, path), GET(req, protocol),
                         GET(req, remote_addr), NULL, GET(req, chunked)};
    PyObject *body = GET(req, body);
    if (shapes == NULL || headers == NULL || body == NULL) return NULL;
    for (int i = 0; i < 6; i++) {
        if (i != 4 && parts[i] == NULL) return NULL;
    }
    if (!PyDict_CheckExact(shapes) || !PyList_CheckExact(headers)) return NULL;
    Py_ssize_t length = PyObject_Length(body), count = PyList_GET_SIZE(headers);
    if (length < 0 || (parts[4] = keep(own, PyLong_FromSsize_t(length))) == NULL) return NULL;
    PyObject *key = keep(own, PyTuple_New(6 + count));
    if (key == NULL) return NULL;
    for (int i = 0; i < 6; i++) PyTuple_SET_ITEM(key, i, Py_NewRef(parts[i]));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(header)) return NULL;  /* may not hash: packet_vars' case */
        PyTuple_SET_ITEM(key, 6 + i, Py_NewRef(header));
    }
    PyObject *known = PyDict_GetItemWithError(shapes, key);
    if (known == NULL) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_TypeError)) PyErr_Clear();
        return NULL;
    }
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2) return NULL;
    PyObject *vars = PyTuple_GET_ITEM(known, 0);
    if (attr_set(&a__vars, req, vars) < 0
            || attr_set(&a__pktsize, req, PyTuple_GET_ITEM(known, 1)) < 0) return NULL;
    return keep(own, Py_NewRef(vars));
}

/* The vars of `req` when this path serves it (borrowed from req), else NULL with no
 * error (the twin serves it), or NULL with an error. Sets *pktsize. */
static PyObject *
plain_vars(Owned *own, PyObject *inst, PyObject *req, PyObject **pktsize)
{
    PyObject *forks = GET(inst, forks), *net = GET(req, net), *reading = NULL;
    if (forks == NULL || net == NULL || forks != Py_None) return NULL;
    if (net != Py_None) {  /* from the network: a control plugin's request is the twin's */
        PyObject *control = GET(net, control);
        if (control == NULL || control != Py_None) return NULL;
    }
    if (attr_lookup(&a__reading, inst, &reading) < 0) return NULL;
    if (reading == NULL) return NULL;  /* made on first use: by the twin */
    keep(own, reading);
    PyObject *checks[] = {GET(reading, limit_post), GET(reading, post_buffering),
                          GET(reading, manage_script_name), GET(req, appended_vars)};
    for (int i = 0; i < 4; i++) {
        int set = truth(checks[i]);
        if (set) return NULL;
    }
    PyObject *statics = GET(reading, static), *routes = GET(reading, routes);
    if (statics == NULL || statics != Py_None) return NULL;
    if (routes == NULL || routes != Py_None) return NULL;  /* --route & co.: the twin */
    PyObject *final = GET(reading, final_routes);
    if (final == NULL || final != Py_None) return NULL;  /* --final-route & co. too */
    PyObject *exceptions = GET(reading, exceptions);
    if (exceptions == NULL || exceptions != Py_None) return NULL;  /* --catch-exceptions... */
    PyObject *loader = GET(inst, app);
    if (loader == NULL) return NULL;
    PyObject *hook = GET(loader, after_req_hook);
    if (hook == NULL || hook != Py_None) return NULL;  /* uwsgi.after_req_hook: the twin's */
    PyObject *vars = GET(req, _vars);
    int built = truth(vars);
    if (built < 0) return NULL;
    if (!built && (vars = known_shape(own, reading, req)) == NULL) {
        /* req._vars or packet_vars(inst, req) */
        PyObject *packet_vars = global(workers_globals, s_packet_vars), *kept;
        PyObject *call_args[] = {inst, req};
        if (PyErr_Occurred() || packet_vars == NULL
                || (vars = keep(own, call(packet_vars, call_args, 2))) == NULL
                || (kept = GET(req, _vars)) == NULL) return NULL;
        if (kept != vars) return NULL;  /* not its packet's vars: the twin's case */
    }
    if (!PyDict_CheckExact(vars)) return NULL;
    PyObject *size = GET(req, _pktsize), *buffer = GET(reading, buffer_size);
    PyObject *framing = GET(reading, uwsgi_framing), *path = GET(req, path);
    PyObject *max_vars = GET(reading, max_vars);
    if (size == NULL || buffer == NULL || framing == NULL || path == NULL || max_vars == NULL)
        return NULL;
    long long n = PyLong_AsLongLong(size), limit = PyLong_AsLongLong(buffer);
    long long most = PyLong_AsLongLong(max_vars);
    int uwsgi = PyObject_IsTrue(framing);
    if (PyErr_Occurred() || uwsgi < 0 || !PyUnicode_Check(path)) return NULL;
    /* Reading.read_head's checks that need no parse (a request from the network was
     * read by its node) */
    int fits = net != Py_None || (uwsgi ? n <= limit
                                        : 2 * (n + PyUnicode_GET_LENGTH(path)) + 64 < limit);
    if (!fits || PyDict_GET_SIZE(vars) > 2 * most) return NULL;
    *pktsize = size;
    return vars;
}

/* AppLoader.app_id(SCRIPT_NAME, apps): the app that answers (-1: none). */
static PyObject *
find_app(Owned *own, PyObject *inst, PyObject *w, PyObject *vars)
{
    PyObject *app = GET(inst, app), *lazy = GET(inst, lazy_apps), *mounts, *fallback;
    int is_lazy = truth(lazy);
    if (app == NULL || is_lazy < 0) return NULL;
    PyObject *apps = is_lazy ? GET(w, apps) : GET(app, apps);
    if (apps == NULL || (mounts = GET(app, mountpoints)) == NULL
            || (fallback = GET(app, default_app)) == NULL) return NULL;
    if (!PyDict_Check(apps) || !PyDict_Check(mounts)) {
        PyObject *script = PyDict_GetItemWithError(vars, s_script_name);
        if (script == NULL && PyErr_Occurred()) return NULL;
        PyObject *args[] = {app, script != NULL ? script : s_empty, is_lazy ? apps : Py_None};
        return keep(own, PyObject_VectorcallMethod(s_app_id, args,
                                                   3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL));
    }
    PyObject *script = PyDict_GetItemWithError(vars, s_script_name), *id, *mountpoint;
    if (script == NULL && PyErr_Occurred()) return NULL;
    if (script == NULL) script = s_empty;
    Py_ssize_t pos = 0;
    while (PyDict_Next(mounts, &pos, &id, &mountpoint)) {
        int same = PyObject_RichCompareBool(mountpoint, script, Py_EQ);
        int has = same > 0 ? PyDict_Contains(apps, id) : 0;
        if (same < 0 || has < 0) return NULL;
        if (has) return keep(own, Py_NewRef(id));
    }
    int has = PyDict_Contains(apps, fallback);
    if (has < 0) return NULL;
    return keep(own, has ? Py_NewRef(fallback) : PyLong_FromLong(-1));
}

/* After the request: --max-requests (+ (id - 1) * --max-requests-delta) after
 * --min-worker-lifetime, then the memory limits: 1 the worker says goodbye, 0 not. */
static int
worker_done(Owned *own, PyObject *inst, PyObject *w)
{
    PyObject *max = GET(inst, max_requests);
    int limited = max == NULL ? -1 : PyObject_RichCompareBool(max, zero, Py_GT);
    if (limited < 0) return -1;
    if (limited) {
        PyObject *delta = GET(inst, max_requests_delta), *id = GET(w, id), *limit;
        PyObject *done = GET(w, delta_requests);
        if (delta == NULL || id == NULL || done == NULL
                || (limit = keep(own, PyNumber_Subtract(id, one))) == NULL
                || (limit = keep(own, PyNumber_Multiply(limit, delta))) == NULL
                || (limit = keep(own, PyNumber_Add(max, limit))) == NULL) return -1;
        int reached = PyObject_RichCompareBool(done, limit, Py_GE);
        if (reached < 0) return -1;
        if (reached) {
            PyObject *clock = wall(own, inst), *secs, *spawn, *lifetime, *age;
            if (clock == NULL || (secs = keep(own, PyNumber_Long(clock))) == NULL
                    || (spawn = GET(w, last_spawn)) == NULL
                    || (lifetime = GET(inst, min_worker_lifetime)) == NULL
                    || (age = keep(own, PyNumber_Subtract(secs, spawn))) == NULL) return -1;
            int old = PyObject_RichCompareBool(age, lifetime, Py_GE);
            if (old != 0) return old;
        }
    }
    int rss = truth(GET(inst, reload_on_rss)), as = truth(GET(inst, reload_on_as));
    if (rss < 0 || as < 0) return -1;
    if (!rss && !as) return 0;
    PyObject *main = GET(w, main);
    return main == NULL ? -1 : truth(keep(own, call_method(inst, s_measure_memory, main, NULL)));
}

static PyObject *
handle_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "handle_request(inst, w, req)");
        return NULL;
    }
    PyObject *inst = args[0], *w = args[1], *req = args[2], *result = NULL, *pktsize = NULL;
    Owned owned = {.count = 0}, *own = &owned;
    PyObject *vars = plain_vars(own, inst, req, &pktsize);
    if (vars == NULL) {
        if (PyErr_Occurred()) goto out;
        PyObject *twin = global(workers_globals, s__handle_request_py);
        if (twin != NULL) result = call(twin, args, 3);
        goto out;
    }
    PyObject *kernel = GET(inst, kernel), *trace = GET(inst, trace), *id = GET(w, id);
    PyObject *started, *fields, *name, *threads;
    if (kernel == NULL || trace == NULL || id == NULL
            || attr_set(&a_vars, req, vars) < 0
            || attr_set(&a_status, w, s_busy) < 0
            || attr_set(&a_request, w, req) < 0
            || attr_set(&a_worker, req, id) < 0
            || (started = GET(kernel, now)) == NULL
            || attr_set(&a_started, req, started) < 0
            || (fields = request_fields(own, req)) == NULL
            || (threads = GET(inst, threads)) == NULL) goto out;
    int many = PyObject_RichCompareBool(threads, one, Py_GT);
    if (many < 0) goto out;
    if (many) {
        PyObject *core = GET(w, core);
        if (core == NULL || PyDict_SetItem(fields, s_core, core) < 0) goto out;
    }
    PyObject *start_wall, *harakiri;
    if ((name = GET(w, name)) == NULL
            || record(trace, started, name, s_request_start, fields) < 0
            || (start_wall = wall(own, inst)) == NULL
            || (harakiri = GET(inst, harakiri)) == NULL) goto out;
    int armed = truth(harakiri);
    if (armed < 0 || (armed && keep(own, call_method(inst, s_arm_harakiri, w, harakiri)) == NULL))
        goto out;
    /* Reading.parse_vars with none of its steps: the environ's vars, the app */
    PyObject *app_id;
    if (attr_set(&a_env_vars, req, vars) < 0
            || (app_id = find_app(own, inst, w, vars)) == NULL
            || attr_set(&a_app_id, req, app_id) < 0) goto out;
    int counted = PyObject_RichCompareBool(app_id, zero, Py_GE);
    if (counted < 0 || (counted && count_in(GET(w, app_local_requests), app_id) < 0)) goto out;
    PyObject *call_app = global(workers_globals, s__call_app), *outcome;
    if (call_app == NULL || (outcome = keep(own, call(call_app, args, 3))) == NULL) goto out;
    if (!PyTuple_CheckExact(outcome) || PyTuple_GET_SIZE(outcome) != 4) {
        if ((outcome = keep(own, PySequence_Tuple(outcome))) == NULL) goto out;
        if (PyTuple_GET_SIZE(outcome) != 4) {
            PyErr_SetString(PyExc_ValueError, "_call_app gave no 4 values");
            goto out;
        }
    }
    PyObject *status = PyTuple_GET_ITEM(outcome, 0), *headers = PyTuple_GET_ITEM(outcome, 1);
    PyObject *body = PyTuple_GET_ITEM(outcome, 2), *failed = PyTuple_GET_ITEM(outcome, 3);
    /* uwsgi_close_request: counters at the end of the request */
    PyObject *end, *core_counts, *core, *elapsed, *requests, *running, *size;
    if ((end = GET(kernel, now)) == NULL
            || increment(w, &a_requests) < 0 || increment(w, &a_delta_requests) < 0
            || (core_counts = GET(w, core_counts)) == NULL
            || (core = GET(w, core)) == NULL) goto out;
    PyObject *at_core = keep(own, PyObject_GetItem(core_counts, core));
    if (at_core == NULL || (at_core = keep(own, PyNumber_Add(at_core, one))) == NULL
            || PyObject_SetItem(core_counts, core, at_core) < 0
            || increment(inst, &a_total_requests) < 0
            || (counted && count_in(GET(w, app_requests), app_id) < 0)
            || (elapsed = keep(own, elapsed_micros(end, started))) == NULL
            || (running = GET(w, running_time)) == NULL
            || (running = keep(own, PyNumber_Add(running, elapsed))) == NULL
            || attr_set(&a_running_time, w, running) < 0
            || (requests = GET(w, requests)) == NULL) goto out;
    int first = PyObject_RichCompareBool(requests, one, Py_EQ);
    if (first < 0) goto out;
    PyObject *avg = elapsed, *tx;
    if (!first) {
        if ((avg = GET(w, avg_rt)) == NULL || (avg = keep(own, PyNumber_Add(avg, elapsed))) == NULL
                || (avg = keep(own, PyNumber_FloorDivide(avg, two))) == NULL) goto out;
    }
    /* tx: the bytes written, headers and body (workers._tx) */
    PyObject *conn = GET(req, conn), *sent;
    if (conn == NULL) goto out;
    if (conn != Py_None) {
        PyObject *written = GET(conn, response_size), *hsize = GET(conn, headers_size);
        if (written == NULL || hsize == NULL
                || (sent = keep(own, PyNumber_Add(written, hsize))) == NULL) goto out;
    }
    else {
        PyObject *twin = global(workers_globals, s__tx), *call_args[] = {req};
        if (twin == NULL || (sent = keep(own, call(twin, call_args, 1))) == NULL) goto out;
    }
    Py_ssize_t length = PyObject_Length(body);
    if (length < 0 || attr_set(&a_avg_rt, w, avg) < 0
            || (size = keep(own, PyLong_FromSsize_t(length))) == NULL
            || (tx = GET(w, tx)) == NULL || (tx = keep(own, PyNumber_Add(tx, sent))) == NULL
            || attr_set(&a_tx, w, tx) < 0
            || attr_set(&a_request, w, Py_None) < 0) goto out;
    int deadline = truth(GET(w, harakiri_deadline));
    if (deadline == 0) deadline = truth(GET(w, user_harakiri_deadline));
    if (deadline < 0) goto out;
    if (deadline && (attr_set(&a_harakiri_deadline, w, zero_float) < 0
                     || attr_set(&a_user_harakiri_deadline, w, zero_float) < 0
                     || keep(own, call_method(inst, s__reschedule_harakiri, w, NULL)) == NULL))
        goto out;
    int raised = truth(failed);
    if (raised < 0 || (fields = keep(own, PyDict_New())) == NULL
            || (id = GET(req, id)) == NULL
            || PyDict_SetItem(fields, s_id, id) < 0
            || PyDict_SetItem(fields, s_status, status) < 0
            || PyDict_SetItem(fields, s_bytes, size) < 0
            || (raised && PyDict_SetItem(fields, s_exception, Py_True) < 0)
            || record(trace, end, name, s_request_end, fields) < 0) goto out;
    PyObject *reason = status != Py_None ? s_empty : raised ? s_raised : s_not_called;
    if (finish(own, req, status, headers, body, end, reason) < 0) goto out;
    /* Instance.publish_request_memory, when it has something to do */
    PyObject *limits[] = {GET(inst, memory_report), GET(inst, reload_on_rss),
                          GET(inst, reload_on_as), GET(inst, evil_reload_on_rss),
                          GET(inst, evil_reload_on_as)};
    int publish = 0;
    for (int i = 0; i < 5 && !publish; i++) publish = truth(limits[i]);
    if (publish < 0 || (publish && keep(own, call_method(inst, s_publish_request_memory,
                                                          w, NULL)) == NULL)) goto out;
    int logged = log_default(own, inst, w, req, start_wall, end, vars);
    if (logged < 0) goto out;
    if (!logged) {
        PyObject *log = global(workers_globals, s__log_request);
        PyObject *log_args[] = {inst, w, req, start_wall, end};
        if (log == NULL || keep(own, call(log, log_args, 5)) == NULL) goto out;
    }
    if (attr_set(&a_conn, req, Py_None) < 0) goto out;
    int done = worker_done(own, inst, w);
    if (done < 0) goto out;
    if (done) {
        PyObject *goodbye = global(workers_globals, s_goodbye), *main = GET(w, main);
        PyObject *bye_args[] = {inst, main};
        if (goodbye == NULL || main == NULL || keep(own, call(goodbye, bye_args, 2)) == NULL)
            goto out;
    }
    result = Py_NewRef(Py_None);
out:
    release(own);
    return result;
}

/* -- core_loop --------------------------------------------------------------------------- */

/* bisect.insort(idle, w, key=by_id): `w` after the workers of its id or a lower one. */
static int
insort_by_id(PyObject *idle, PyObject *w)
{
    PyObject *id = attr_get(&a_id, w);
    if (id == NULL) return -1;
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(idle);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        PyObject *other = attr_get(&a_id, PyList_GET_ITEM(idle, mid));
        int before = other == NULL ? -1 : PyObject_RichCompareBool(id, other, Py_LT);
        Py_XDECREF(other);
        if (before < 0) {
            Py_DECREF(id);
            return -1;
        }
        if (before) hi = mid;
        else lo = mid + 1;
    }
    Py_DECREF(id);
    return PyList_Insert(idle, lo, w);
}

/* One turn of the loop: 1 go on, 0 the loop is left (`_leave` returned), -1 error. */
static int
core_turn(PyObject *inst, PyObject *core, PyObject *w, PyObject *kernel, PyObject *signals,
          PyObject *private, PyObject *shared, PyObject *listen, PyObject *idle,
          PyObject *waiters, int thunder_lock)
{
    Owned owned = {.count = 0}, *own = &owned;
    int rc = -1, go = truth(GET(w, manage_next_request));
    PyObject *owner, *kind = NULL, *value = NULL;
    if (go <= 0) {
        PyObject *leave = global(workers_globals, s__leave), *leave_args[] = {inst, core};
        if (go == 0 && leave != NULL && keep(own, call(leave, leave_args, 2)) != NULL) rc = 0;
        goto out;
    }
    if ((owner = GET(w, acceptor)) == NULL) goto out;
    if (owner != Py_None && owner != core) {  /* wait for the mutex */
        if (keep(own, call_method(waiters, s_append, core, NULL)) == NULL
                || keep(own, call_method(kernel, s_park, s_for_mutex, NULL)) == NULL) goto out;
        rc = 1;
        goto out;
    }
    if (attr_set(&a_acceptor, w, core) < 0) goto out;
    int has = truth(private);
    if (has > 0) {
        kind = s_sig;
        value = keep(own, call_method(private, s_popleft, NULL, NULL));
    } else if (has == 0 && (has = truth(shared)) > 0) {
        kind = s_sig;
        value = keep(own, call_method(shared, s_popleft, NULL, NULL));
    } else if (has == 0 && (has = truth(listen)) > 0
               && (has = truth(GET(w, accepting))) > 0) {
        kind = s_req;
        value = keep(own, call_method(listen, s_popleft, NULL, NULL));
    } else if (has == 0) {  /* idle in accept */
        PyObject *message;
        if (attr_set(&a_status, w, s_idle) < 0
                || attr_set(&a_idle, w, Py_True) < 0
                || (thunder_lock ? PyList_Append(idle, w) : insort_by_id(idle, w)) < 0
                || (message = keep(own, call_method(kernel, s_park, s_accept, NULL))) == NULL)
            goto out;
        if (!PyTuple_CheckExact(message) || PyTuple_GET_SIZE(message) != 2) {
            if ((message = keep(own, PySequence_Tuple(message))) == NULL) goto out;
            if (PyTuple_GET_SIZE(message) != 2) {
                PyErr_Format(PyExc_ValueError, "expected 2 values to unpack, got %zd",
                             PyTuple_GET_SIZE(message));
                goto out;
            }
        }
        kind = PyTuple_GET_ITEM(message, 0);
        value = PyTuple_GET_ITEM(message, 1);
    }
    if (has < 0 || value == NULL) goto out;
    /* thunder_unlock: the accept mutex to the first core waiting for it */
    int waiting = truth(waiters);
    if (waiting < 0) goto out;
    if (waiting) {
        PyObject *next = keep(own, call_method(waiters, s_popleft, NULL, NULL));
        if (next == NULL || attr_set(&a_acceptor, w, next) < 0
                || keep(own, call_method(kernel, s_wake, next, NULL)) == NULL) goto out;
    } else if (attr_set(&a_acceptor, w, Py_None) < 0) goto out;
    int is = PyObject_RichCompareBool(kind, s_sig, Py_EQ);
    if (is < 0) goto out;
    if (is) {
        PyObject *run = GET(signals, run_handler);
        if (run == NULL || keep(own, call(run, (PyObject *[]){core, value}, 2)) == NULL) goto out;
    } else {
        if ((is = PyObject_RichCompareBool(kind, s_req, Py_EQ)) < 0) goto out;
        PyObject *handle = is ? global(workers_globals, s_handle_request) : NULL;
        PyObject *handle_args[] = {inst, core, value};
        if (is && (handle == NULL || keep(own, call(handle, handle_args, 3)) == NULL)) goto out;
    }
    rc = 1;
out:
    release(own);
    return rc;
}

static PyObject *
core_loop(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "core_loop(inst, core)");
        return NULL;
    }
    PyObject *inst = args[0], *core = args[1], *result = NULL;
    Owned owned = {.count = 0}, *own = &owned;
    /* what the loop reads once, as the Python loop does */
    PyObject *w = GET(core, main), *subsystems = GET(inst, subsystems), *kernel = GET(inst, kernel);
    PyObject *signals = NULL, *private, *shared = NULL, *listen, *idle, *waiters;
    if (w == NULL || subsystems == NULL || kernel == NULL
            || (signals = keep(own, PyObject_CallMethod(subsystems, "get", "O", s_signals)))
               == NULL
            || (private = GET(w, signal_queue)) == NULL
            || (shared = signals == Py_None ? keep(own, PyTuple_New(0))
                                            : GET(signals, shared_workers)) == NULL
            || (listen = GET(inst, listen_queue)) == NULL
            || (idle = GET(inst, idle_workers)) == NULL
            || (waiters = GET(w, mutex_waiters)) == NULL) goto out;
    int thunder_lock = truth(GET(inst, thunder_lock));
    if (thunder_lock < 0) goto out;
    if (!PyList_Check(idle)) {
        PyErr_SetString(PyExc_TypeError, "_creq: inst.idle_workers is not a list");
        goto out;
    }
    int go;
    while ((go = core_turn(inst, core, w, kernel, signals, private, shared, listen, idle,
                           waiters, thunder_lock)) > 0) {}
    if (go == 0) result = Py_NewRef(Py_None);
out:
    release(own);
    return result;
}

/* -- submit ---------------------------------------------------------------------------- */

/* Request.__init__ (the function) and its defaults of remote_addr and protocol, read
 * at setup. */
static PyObject *request_init, *default_remote_addr, *default_protocol;

/* Request(method, path, None, body, submitted, ident=ident) for a str method and a
 * bytes body: the attributes set as Request.__init__ sets them, while it is the
 * __init__ read at setup. Else Request itself. */
static PyObject *
new_request(PyObject *method, PyObject *path, PyObject *headers, PyObject *body,
            PyObject *submitted, PyObject *ident)
{
    PyObject *type = global(workers_globals, s_Request);
    if (type == NULL) return NULL;
    if (headers != Py_None || !PyBytes_CheckExact(body) || !PyUnicode_CheckExact(method)
            || !PyType_Check(type) || _PyType_Lookup((PyTypeObject *)type, s___init__)
                                      != request_init) {
        PyObject *args[] = {method, path, headers, body, submitted, ident};
        PyObject *names = PyTuple_Pack(1, s_ident);
        PyObject *req = names == NULL ? NULL : PyObject_Vectorcall(type, args, 5, names);
        Py_XDECREF(names);
        return req;
    }
    PyObject *req = NULL, *upper = NULL, *headers_list = NULL, *length = NULL;
    if ((upper = call_method(method, s_upper, NULL, NULL)) == NULL
            || (headers_list = PyList_New(0)) == NULL
            || (length = PyLong_FromSsize_t(PyBytes_GET_SIZE(body))) == NULL
            || (req = PyBaseObject_Type.tp_new((PyTypeObject *)type, empty_args, NULL)) == NULL
            || attr_set(&a_id, req, ident) < 0 || attr_set(&a_method, req, upper) < 0
            || attr_set(&a_path, req, path) < 0 || attr_set(&a_headers, req, headers_list) < 0
            || attr_set(&a_body, req, body) < 0 || attr_set(&a_chunked, req, Py_False) < 0
            || attr_set(&a_body_length, req, length) < 0
            || attr_set(&a_remote_addr, req, default_remote_addr) < 0
            || attr_set(&a_protocol, req, default_protocol) < 0
            || attr_set(&a_submitted, req, submitted) < 0) Py_CLEAR(req);
    Py_XDECREF(upper);
    Py_XDECREF(headers_list);
    Py_XDECREF(length);
    return req;
}

/* `Simulation.submit(method, path, headers=, body=, at=)` without body chunks: the
 * same steps (the start checks, the request's id, the request, its dispatch event). */
static PyObject *
submit(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "submit(sim, method, path, headers, body, at)");
        return NULL;
    }
    PyObject *sim = args[0], *at = args[5], *result = NULL;
    Owned owned = {.count = 0}, *own = &owned;
    PyObject *kernel = GET(sim, kernel), *watchdog = GET(sim, _watchdog), *current;
    if (kernel == NULL || watchdog == NULL || (current = GET(kernel, current)) == NULL)
        goto out;
    int ready = truth(GET(sim, started));
    if (ready > 0) ready = !truth(GET(sim, closed)) && current == Py_None;
    if (ready > 0) ready = !truth(GET(watchdog, driving));
    if (PyErr_Occurred() || (!ready
                             && keep(own, call_method(sim, s__ensure_started, NULL, NULL)) == NULL))
        goto out;
    PyObject *ids = GET(sim, _request_ids), *now, *req, *inst, *dispatch;
    if (ids == NULL || (ids = keep(own, PyNumber_Add(ids, one))) == NULL
            || attr_set(&a__request_ids, sim, ids) < 0
            || (now = GET(kernel, now)) == NULL
            || (req = keep(own, new_request(args[1], args[2], args[3], args[4], now, ids))) == NULL
            || (inst = GET(sim, inst)) == NULL
            || (dispatch = global(workers_globals, s_dispatch_request)) == NULL) goto out;
    PyObject *event;
    if (at == Py_None) {
        PyObject *call_args[] = {kernel, dispatch, inst, req};
        event = PyObject_VectorcallMethod(s_call_soon, call_args,
                                          4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    } else {  /* kernel.post_at(max(at, now), ...) */
        int later = PyObject_RichCompareBool(now, at, Py_GT);
        if (later < 0) goto out;
        PyObject *call_args[] = {kernel, later ? now : at, dispatch, inst, req};
        event = PyObject_VectorcallMethod(s_post_at, call_args,
                                          5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (keep(own, event) != NULL) result = Py_NewRef(req);
out:
    release(own);
    return result;
}

/* -- setup ----------------------------------------------------------------------------- */

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *workers, *reqlog;
    if (!PyArg_ParseTuple(args, "O!O!:setup", &PyDict_Type, &workers, &PyDict_Type, &reqlog))
        return NULL;
    PyObject *type = global(workers, s_Request), *init, *defaults;
    if (type == NULL || !PyType_Check(type)
            || (init = _PyType_Lookup((PyTypeObject *)type, s___init__)) == NULL
            || (defaults = PyObject_GetAttrString(init, "__kwdefaults__")) == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_creq: no Request.__init__");
        return NULL;
    }
    PyObject *remote = PyDict_Check(defaults) ? PyDict_GetItem(defaults, s_remote_addr) : NULL;
    PyObject *protocol = PyDict_Check(defaults) ? PyDict_GetItem(defaults, s_protocol) : NULL;
    if (remote == NULL || protocol == NULL) {
        Py_DECREF(defaults);
        PyErr_SetString(PyExc_TypeError, "_creq: Request.__init__ without its defaults");
        return NULL;
    }
    Py_XSETREF(request_init, Py_NewRef(init));
    Py_XSETREF(default_remote_addr, Py_NewRef(remote));
    Py_XSETREF(default_protocol, Py_NewRef(protocol));
    Py_DECREF(defaults);
    Py_XSETREF(workers_globals, Py_NewRef(workers));
    Py_XSETREF(reqlog_globals, Py_NewRef(reqlog));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS,
     "setup(workers_globals, reqlog_globals): the module dicts whose names are called"},
    {"handle_request", (PyCFunction)(void (*)(void))handle_request, METH_FASTCALL,
     "handle_request(inst, w, req): workers.handle_request, its common case in C"},
    {"take_idle_worker", (PyCFunction)(void (*)(void))take_idle_worker, METH_FASTCALL,
     "take_idle_worker(inst, what): workers.take_idle_worker, its plain case in C"},
    {"dispatch_request", (PyCFunction)(void (*)(void))dispatch_request, METH_FASTCALL,
     "dispatch_request(inst, req): workers.dispatch_request, its common case in C"},
    {"core_loop", (PyCFunction)(void (*)(void))core_loop, METH_FASTCALL,
     "core_loop(inst, core): workers.core_loop, in C"},
    {"submit", (PyCFunction)(void (*)(void))submit, METH_FASTCALL,
     "submit(sim, method, path, headers, body, at): Simulation.submit without chunks"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_creq", "A simulated request's bookkeeping in C.", -1, methods,
};

#define INTERN(n) ATTR_INTERN(n) s_##n = a_##n.name;
#define STRING(var, value) if ((var = PyUnicode_InternFromString(value)) == NULL) return NULL;

PyMODINIT_FUNC
PyInit__creq(void)
{
    NAMES(INTERN)
    STRING(s_request_start, "request.start")
    STRING(s_request_end, "request.end")
    STRING(s_request_submit, "request.submit")
    STRING(s_choice, "choice")
    STRING(s_accept, "accept")
    STRING(s_req, "req")
    STRING(s_busy, "busy")
    STRING(s_master, "master")
    STRING(s_empty, "")
    STRING(s_script_name, "SCRIPT_NAME")
    STRING(s_sig, "sig")
    STRING(s_for_mutex, "accept mutex")
    STRING(s_raised, "connection closed without a response: the app raised before "
                     "start_response")
    STRING(s_not_called, "connection closed without a response: start_response not called")
    if ((s_reqlog_key = Py_BuildValue("(s)", "reqlog")) == NULL
            || (zero = PyLong_FromLong(0)) == NULL || (one = PyLong_FromLong(1)) == NULL
            || (two = PyLong_FromLong(2)) == NULL
            || (zero_float = PyFloat_FromDouble(0.0)) == NULL
            || (empty_args = PyTuple_New(0)) == NULL) return NULL;
    if ((time_dict = module_dict("time")) == NULL
            || (Random = (PyTypeObject *)import_attr("random", "Random")) == NULL
            || (VirtualClock = (PyTypeObject *)import_attr("simuwsgi._core.clock",
                                                          "VirtualClock")) == NULL
            || (Spool = (PyTypeObject *)import_attr("simuwsgi._core._spool", "Spool")) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
