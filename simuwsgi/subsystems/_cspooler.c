/*
 * Optional C accelerator for the spooler's task path (simuwsgi.subsystems.spooler).
 *
 * A task is written by `uwsgi.spool(dict)` in some process and run by a spooler
 * process's scan. `Spoolers` builds both as Python code; this module makes builtin
 * functions of their common case, step for step what the Python code does for it (the
 * same system calls in the same order, the same trace records and log lines), and hands
 * every other call to the Python function (`fallback`, same arguments), which stays the
 * one place where uWSGI's parsing, errors, faults and the rarer options live:
 *
 *   spool(state)     uwsgi.spool / send_to_spooler with one exact dict of exact bytes
 *       keys and values (each at most 65535 bytes, the vars block too), an exact bytes
 *       `body` or none, no `spooler`, `priority` or `at` key, and no fault planned:
 *       `_py_spool` -> `spool_request` -> `_write_file` (open O_EXCL, lockf, one write,
 *       futimens to the virtual wall clock, close), the log line unless
 *       --spooler-quiet, the `spool.enqueue` record, `_wake_spoolers`.
 *   manager(state)   `Spoolers._manage_all(slot, directory, names)` for a scan of the
 *       spooler's own directory: per entry with no fault planned, `_manage` (lstat, the
 *       `at` check, open, the busy and lock checks, one read, the parse) and `_run_task`
 *       (the records, log lines, harakiri, `uwsgi.spooler` through `inst.call_python`,
 *       unlink on SPOOL_OK, close, --spooler-max-tasks). The directory is opened once
 *       per scan and the entries' system calls are made relative to it, as real uWSGI
 *       makes them relative to the directory it chdir()s to. An entry that is a
 *       directory (--spooler-ordered), has a body over 2 GB, a short or invalid vars
 *       block or a read error, or comes while a fault is planned goes to `_manage`
 *       before anything of it is recorded (it does the checks again).
 *   readdir_order(names, seed)   the order a scan sees the names in.
 *
 * What these save is the Python frames and objects of each task (a dozen frames, the
 * pairs tuple, the file's bytes, the os module's argument conversions).
 * SIMUWSGI_PURE_PYTHON=1 (or a failed build) runs the Python functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../_core/_cutil.h"

#define SPOOL_OK (-2)

static PyObject *str_now, *str_current, *str_name, *str_faults, *str_master;
static PyObject *str_time, *str_getrandbits, *str_hostname, *str_pid, *str_dir;
static PyObject *str_log, *str_path, *str_priority, *str_at, *str_spool_enqueue;
static PyObject *str_proc, *str_alive, *str_running, *str_waiting, *str_woken;
static PyObject *str_wakeup, *str_interrupt;
static PyObject *str_facade, *str_spooler, *str_current_task;
static PyObject *str_spool_start, *str_spool_end, *str_spool_retry, *str_spool_remove;
static PyObject *str_arm_harakiri, *str_disarm_harakiri, *str_harakiri_timer;
static PyObject *str_task_name, *str_body, *str_cwd, *str_apply_cwd, *str_call_python;
static PyObject *str_kernel, *str_wall_offset, *str_prefix, *str_slash, *str_hooks;
static PyObject *str_rc, *str_reason, *str_done, *str_tasks, *str_wall;
static PyObject *bytes_body, *one, *bits31;
/* what spooler_function gives when the process has no `uwsgi.spooler` (_MISSING) */
static PyObject *missing;

/* The state of both functions: a tuple of the objects they work on, which live as long
 * as the instance (`Spoolers._c_state` builds it). */
#define STATE(self, i) PyTuple_GET_ITEM((self), (i))
#define SPOOLERS(self) STATE(self, 0)
#define FALLBACK(self) STATE(self, 1)
#define INST(self) STATE(self, 2)
#define KERNEL(self) STATE(self, 3)
#define TRACE_ADD(self) STATE(self, 4)
#define CLOCK(self) STATE(self, 5)
#define RNG(self) STATE(self, 6)
#define COUNTERS(self) STATE(self, 7)
#define SLOTS(self) STATE(self, 8)
#define BUSY(self) STATE(self, 9)
#define PROCESS_EXIT(self) STATE(self, 10)
/* the options, fixed for the instance: (quiet, ordered, harakiri, chdir, max_tasks,
 * spooler.py's MAX_RW_COUNT: the most one read() or write() moves on Linux) */
#define OPTION(self, i) PyTuple_GET_ITEM(STATE(self, 11), (i))
#define MANAGE(self) STATE(self, 12)
#define CLOCK_TYPE(self) STATE(self, 13)
#define QUIET(self) PyObject_IsTrue(OPTION(self, 0))
#define ORDERED(self) PyObject_IsTrue(OPTION(self, 1))
#define HARAKIRI(self) PyLong_AsLongLong(OPTION(self, 2))
#define CHDIR(self) OPTION(self, 3)
#define MAX_TASKS(self) PyLong_AsLongLong(OPTION(self, 4))
#define MAX_RW_COUNT(self) PyLong_AsLongLong(OPTION(self, 5))
#define STATE_SIZE 14

/* The truth of obj.name: 1, 0, -1 on error. */
static int
attr_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* obj.name as a C long long (-1 with an exception set on error). */
static long long
attr_int(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    long long n = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return n;
}

/* int(x) of a float or int object, as a C long long. */
static long long
trunc_of(PyObject *x)
{
    PyObject *n = PyNumber_Long(x);
    if (n == NULL) return -1;
    long long out = PyLong_AsLongLong(n);
    Py_DECREF(n);
    return out;
}

/* `clock.time()`: for the VirtualClock, what its method returns, `wall_offset +
 * kernel.now` (as the clock module's patched time functions compute it). */
static PyObject *
wall_time(PyObject *self)
{
    PyObject *clock = CLOCK(self);
    if (Py_TYPE(clock) != (PyTypeObject *)CLOCK_TYPE(self))
        return call_method(clock, str_time, NULL, NULL);
    PyObject *offset = PyObject_GetAttr(clock, str_wall_offset), *now = NULL, *wall = NULL;
    PyObject *kernel = PyObject_GetAttr(clock, str_kernel);
    if (offset != NULL && kernel != NULL && (now = PyObject_GetAttr(kernel, str_now)) != NULL)
        wall = PyNumber_Add(offset, now);
    Py_XDECREF(offset);
    Py_XDECREF(kernel);
    Py_XDECREF(now);
    return wall;
}

/* int(obj.method()) of a clock (`clock.time()`, `inst.wall()`). */
static int
int_now(PyObject *self, PyObject *obj, PyObject *method, long long *out)
{
    PyObject *t = obj == CLOCK(self) ? wall_time(self) : call_method(obj, method, NULL, NULL);
    if (t == NULL) return -1;
    *out = trunc_of(t);
    Py_DECREF(t);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* trace.add(kernel.now, who, kind, fields). */
static int
record(PyObject *self, PyObject *who, PyObject *kind, PyObject *fields)
{
    PyObject *now = PyObject_GetAttr(KERNEL(self), str_now);
    if (now == NULL) return -1;
    PyObject *args[] = {now, who, kind, fields};
    PyObject *done = PyObject_Vectorcall(TRACE_ADD(self), args, 4, NULL);
    Py_DECREF(now);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

/* A record of {"path": path, key: value} (key NULL: the path only). */
static int
record_path(PyObject *self, PyObject *who, PyObject *kind, PyObject *path, PyObject *key,
            PyObject *value)
{
    PyObject *fields = PyDict_New();
    if (fields == NULL) return -1;
    int rc = -1;
    if (PyDict_SetItem(fields, str_path, path) == 0
            && (key == NULL || PyDict_SetItem(fields, key, value) == 0))
        rc = record(self, who, kind, fields);
    Py_DECREF(fields);
    return rc;
}

/* inst.log(line), the line from a PyUnicode_FromFormat format. */
static int
log_line(PyObject *self, const char *format, ...)
{
    va_list vargs;
    va_start(vargs, format);
    PyObject *line = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (line == NULL) return -1;
    int rc = call_void(INST(self), str_log, line, NULL);
    Py_DECREF(line);
    return rc;
}

/* Python's fcntl.lockf(fd, LOCK_EX[|LOCK_NB]): a whole-file write lock. 0 or -1 (errno). */
static int
lock_file(int fd, int wait)
{
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    int rc;
    do {
        rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &lock);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

/* os.utime(fd, (when, when)): the seconds floored to nanoseconds, as Python does. */
static int
set_times(int fd, double when)
{
    double whole;
    double frac = floor(modf(when, &whole) * 1e9);
    if (frac >= 1e9) {
        frac -= 1e9;
        whole += 1.0;
    } else if (frac < 0) {
        frac += 1e9;
        whole -= 1.0;
    }
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = (time_t)whole;
    ts[0].tv_nsec = ts[1].tv_nsec = (long)frac;
    return futimens(fd, ts);
}

/* Whether the file system's encoding is UTF-8 (then a path's bytes are its UTF-8). */
static int fs_utf8;

/* The path joined from `n` str pieces and an ASCII `tail` (or NULL), as a str (*path)
 * and, unless cpath is NULL, as the bytes the os module would pass to the system
 * (*cpath): the pieces' UTF-8 copied when every piece has one (no lone surrogate), else
 * Python's own join and encoding. 0, or -1 on error. */
static int
make_path(PyObject **path, PyObject **cpath, PyObject *const *pieces, int n, const char *tail)
{
    const char *utf8[8];
    Py_ssize_t lens[8], total = 0, tail_len = tail == NULL ? 0 : (Py_ssize_t)strlen(tail);
    int plain = fs_utf8 && n <= 7;
    for (int i = 0; plain && i < n; i++) {
        utf8[i] = PyUnicode_AsUTF8AndSize(pieces[i], &lens[i]);
        if (utf8[i] == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
            PyErr_Clear();
            plain = 0;
        }
        total += lens[i];
    }
    if (!plain) {
        PyObject *empty = PyUnicode_New(0, 0), *list = PyList_New(n + 1);
        *path = NULL;
        if (empty != NULL && list != NULL) {
            for (int i = 0; i < n; i++) PyList_SET_ITEM(list, i, Py_NewRef(pieces[i]));
            PyList_SET_ITEM(list, n, PyUnicode_FromString(tail == NULL ? "" : tail));
            if (PyList_GET_ITEM(list, n) != NULL) *path = PyUnicode_Join(empty, list);
        }
        Py_XDECREF(empty);
        Py_XDECREF(list);
        if (*path == NULL || cpath == NULL) return *path == NULL ? -1 : 0;
        *cpath = PyUnicode_EncodeFSDefault(*path);
        return *cpath == NULL ? -1 : 0;
    }
    char stack[512], *buf = stack;
    if (cpath != NULL) {
        if ((*cpath = PyBytes_FromStringAndSize(NULL, total + tail_len)) == NULL) return -1;
        buf = PyBytes_AS_STRING(*cpath);
    } else if (total + tail_len > (Py_ssize_t)sizeof stack
               && (buf = PyMem_Malloc(total + tail_len)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    char *out = buf;
    for (int i = 0; i < n; i++) {
        memcpy(out, utf8[i], lens[i]);
        out += lens[i];
    }
    memcpy(out, tail, tail_len);
    *path = PyUnicode_DecodeUTF8(buf, total + tail_len, "surrogateescape");
    if (cpath == NULL && buf != stack) PyMem_Free(buf);
    return *path == NULL ? -1 : 0;
}

/* -- spool ---------------------------------------------------------------------------- */

static int
is_key(PyObject *key, const char *text)
{
    size_t n = strlen(text);
    return (size_t)PyBytes_GET_SIZE(key) == n && memcmp(PyBytes_AS_STRING(key), text, n) == 0;
}

/* The task dict's vars block size, and its body (borrowed, NULL if none); 0 when the
 * fast path takes the dict, 1 when it does not, -1 on error. */
static int
check_task(PyObject *task, long long max_rw, Py_ssize_t *block_len, PyObject **body)
{
    Py_ssize_t pos = 0, total = 0;
    PyObject *key, *value;
    *body = NULL;
    while (PyDict_Next(task, &pos, &key, &value)) {
        if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) return 1;
        if (is_key(key, "body")) {
            *body = value;
            continue;
        }
        if (is_key(key, "spooler") || is_key(key, "priority") || is_key(key, "at")) return 1;
        Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = PyBytes_GET_SIZE(value);
        if (klen > 0xFFFF || vlen > 0xFFFF) return 1;  /* truncated: the Python code */
        total += 4 + klen + vlen;
    }
    if (total > 0xFFFF) return 1;  /* "args buffer is limited to 64k" */
    if (*body != NULL && PyBytes_GET_SIZE(*body) > max_rw) return 1;
    *block_len = total;
    return 0;
}

/* The file's content: the header [17, len u16le, 0], the vars, the body. */
static PyObject *
spool_content(PyObject *task, Py_ssize_t block_len, PyObject *body)
{
    Py_ssize_t body_len = body == NULL ? 0 : PyBytes_GET_SIZE(body);
    PyObject *content = PyBytes_FromStringAndSize(NULL, 4 + block_len + body_len);
    if (content == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(content);
    *out++ = 17;
    *out++ = block_len & 0xFF;
    *out++ = (block_len >> 8) & 0xFF;
    *out++ = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(task, &pos, &key, &value)) {
        PyObject *items[] = {key, value};
        for (int i = 0; i < 2; i++) {
            Py_ssize_t n = PyBytes_GET_SIZE(items[i]);
            *out++ = n & 0xFF;
            *out++ = (n >> 8) & 0xFF;
            memcpy(out, PyBytes_AS_STRING(items[i]), n);
            out += n;
        }
    }
    if (body_len) memcpy(out, PyBytes_AS_STRING(body), body_len);
    return content;
}

/* `_write_file(path, content, 0, wall)`: 0 written, 1 failed (logged), -1 on error. */
static int
write_file(PyObject *self, PyObject *path, const char *cpath, PyObject *content, double wall)
{
    int fd;
    do {
        fd = open(cpath, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return log_line(self, "open(\"%U\"): %s [core/spooler.c line 271]", path,
                        strerror(errno)) < 0 ? -1 : 1;
    }
    const char *data = PyBytes_AS_STRING(content);
    Py_ssize_t left = PyBytes_GET_SIZE(content);
    int failed = lock_file(fd, 1) < 0;
    while (!failed && left > 0) {
        ssize_t n = write(fd, data, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) failed = 1;
        else {
            data += n;
            left -= n;
        }
    }
    if (!failed && set_times(fd, wall) < 0) {
        if (log_line(self, "uwsgi_spooler_request()/futimes(): %s [core/spooler.c line 348]",
                     strerror(errno)) < 0) {
            close(fd);
            return -1;
        }
        failed = set_times(fd, wall) < 0;
    }
    if (failed) {
        int rc = log_line(self, "uwsgi_spool_request()/write(): %s [core/spooler.c line 381]",
                          strerror(errno));
        close(fd);
        unlink(cpath);
        return rc < 0 ? -1 : 1;
    }
    close(fd);
    return 0;
}

/* `_wake_spoolers(directory)`: SIGUSR1 to every spooler process of the directory that is
 * not running a task. */
static int
wake_spoolers(PyObject *self, PyObject *directory)
{
    PyObject *slots = SLOTS(self);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); i++) {
        PyObject *slot = PyList_GET_ITEM(slots, i), *dir = NULL, *proc = NULL;
        int skip = -1;
        if ((dir = PyObject_GetAttr(slot, str_dir)) != NULL
                && (proc = PyObject_GetAttr(slot, str_proc)) != NULL) {
            skip = PyObject_RichCompareBool(dir, directory, Py_NE);
            if (skip == 0) skip = proc == Py_None;
            if (skip == 0) {
                skip = attr_true(proc, str_alive);
                skip = skip < 0 ? -1 : !skip;
            }
            if (skip == 0) skip = attr_true(slot, str_running);
        }
        Py_XDECREF(dir);
        Py_XDECREF(proc);
        if (skip) {
            if (skip < 0) return -1;
            continue;
        }
        int waiting = attr_true(slot, str_waiting);
        if (waiting < 0) return -1;
        if (waiting) {
            PyObject *why = PyUnicode_FromString("wakeup");
            int rc = why == NULL ? -1 : call_void(SPOOLERS(self), str_interrupt, slot, why);
            Py_XDECREF(why);
            if (rc < 0) return -1;
            continue;
        }
        int woken = attr_true(slot, str_woken);
        if (woken < 0) return -1;
        if (!woken) {  /* delivered while it runs (e.g. in a signal handler) */
            PyObject *count = PyObject_GetAttr(slot, str_wakeup), *more = NULL;
            if (count != NULL) more = PyNumber_Add(count, one);
            Py_XDECREF(count);
            int rc = more == NULL ? -1 : PyObject_SetAttr(slot, str_wakeup, more);
            Py_XDECREF(more);
            if (rc < 0) return -1;
        }
    }
    return 0;
}

/* "_{pid}_{counter}_{rand}_{sec}_{usec}" into tail (at least 5 * 22 bytes), as str()
 * writes ints. */
static int
number_tail(char *tail, PyObject *pid, PyObject *counter, PyObject *rand, PyObject *sec,
            long long usec)
{
    PyObject *ints[] = {pid, counter, rand, sec};
    long long values[4];
    for (int i = 0; i < 4; i++) {
        if (!PyLong_Check(ints[i])) {
            PyErr_SetString(PyExc_TypeError, "spool file name: the numbers are ints");
            return -1;
        }
        values[i] = PyLong_AsLongLong(ints[i]);
        if (values[i] == -1 && PyErr_Occurred()) return -1;
    }
    for (int i = 0; i < 5; i++) {  /* snprintf's "_%lld" five times, without its parsing */
        long long v = i < 4 ? values[i] : usec;
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        char digits[24];
        int n = 0;
        do digits[n++] = (char)('0' + u % 10); while ((u /= 10) != 0);
        *tail++ = '_';
        if (v < 0) *tail++ = '-';
        while (n) *tail++ = digits[--n];
    }
    *tail = '\0';
    return 0;
}

/* `self._counters.get(writer, self._counters.get(inst.master, 0)) + 1`, stored. */
static PyObject *
next_counter(PyObject *self, PyObject *writer, PyObject *master)
{
    PyObject *counters = COUNTERS(self);
    PyObject *count = PyDict_GetItemWithError(counters, writer);
    if (count == NULL && !PyErr_Occurred()) count = PyDict_GetItemWithError(counters, master);
    if (count == NULL && PyErr_Occurred()) return NULL;
    PyObject *next = count == NULL ? Py_NewRef(one) : PyNumber_Add(count, one);
    if (next != NULL && PyDict_SetItem(counters, writer, next) < 0) Py_CLEAR(next);
    return next;
}

static PyObject *
spool_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = FALLBACK(self), *inst = INST(self);
    if (nargs != 1 || !no_keywords(kwnames) || !PyDict_CheckExact(args[0]))
        return fall_back(fallback, args, nargs, kwnames);
    PyObject *task = args[0], *body = NULL;
    Py_ssize_t block_len = 0;
    PyObject *faults = PyObject_GetAttr(inst, str_faults);
    if (faults == NULL) return NULL;
    Py_DECREF(faults);
    int other = faults != Py_None ? 1 : check_task(task, MAX_RW_COUNT(self), &block_len, &body);
    if (other) return other < 0 ? NULL : fall_back(fallback, args, nargs, kwnames);

    PyObject *writer = NULL, *master = NULL, *counter = NULL, *wall_obj = NULL;
    PyObject *sec = NULL, *rand = NULL, *hostname = NULL, *pid = NULL, *slot = NULL;
    PyObject *directory = NULL, *path = NULL, *cpath = NULL, *content = NULL;
    PyObject *who = NULL, *fields = NULL, *result = NULL;
    char tail[160];
    Py_XINCREF(body);
    if (body != NULL && PyDict_DelItem(task, bytes_body) < 0) goto out;  /* the caller's dict */
    if ((content = spool_content(task, block_len, body)) == NULL
            || (writer = PyObject_GetAttr(KERNEL(self), str_current)) == NULL
            || (master = PyObject_GetAttr(inst, str_master)) == NULL) goto out;
    int present = PyObject_IsTrue(writer);
    if (present < 0) goto out;
    if (!present) Py_SETREF(writer, Py_NewRef(master));
    if ((counter = next_counter(self, writer, master)) == NULL
            || (wall_obj = wall_time(self)) == NULL
            || (sec = PyNumber_Long(wall_obj)) == NULL) goto out;
    double wall = PyFloat_AsDouble(wall_obj), sec_d = PyFloat_AsDouble(sec);
    if (PyErr_Occurred()) goto out;
    long long usec = (long long)((wall - sec_d) * 1000000);
    if (usec > 999999) usec = 999999;
    if ((rand = call_method(RNG(self), str_getrandbits, bits31, NULL)) == NULL  /* rand() */
            || (hostname = PyObject_GetAttr(inst, str_hostname)) == NULL) goto out;
    Py_SETREF(hostname, PyObject_Str(hostname));  /* as the f-string formats it */
    if (hostname == NULL) goto out;
    present = PyObject_IsTrue(writer);
    if (present < 0) goto out;
    pid = present ? PyObject_GetAttr(writer, str_pid) : PyLong_FromLong(0);
    if (pid == NULL || (slot = PyList_GetItem(SLOTS(self), 0)) == NULL
            || (directory = PyObject_GetAttr(slot, str_dir)) == NULL
            || number_tail(tail, pid, counter, rand, sec, usec) < 0) goto out;
    /* spool_file_name()'s format */
    PyObject *pieces[] = {directory, str_prefix, hostname};
    if (make_path(&path, &cpath, pieces, 3, tail) < 0) goto out;
    if (strlen(PyBytes_AS_STRING(cpath)) != (size_t)PyBytes_GET_SIZE(cpath)) {
        PyErr_SetString(PyExc_ValueError, "embedded null byte");  /* as os.open says */
        goto out;
    }
    int written = write_file(self, path, PyBytes_AS_STRING(cpath), content, wall);
    if (written != 0) {
        if (written > 0) PyErr_SetString(PyExc_ValueError, "unable to spool job");
        goto out;
    }
    int quiet = QUIET(self);
    if (quiet < 0
            || (!quiet && log_line(self, "[spooler] written %zd bytes to file %U",
                                   PyBytes_GET_SIZE(content), path) < 0)) goto out;
    who = present ? PyObject_GetAttr(writer, str_name) : PyUnicode_FromString("master");
    if (who == NULL || (fields = PyDict_New()) == NULL
            || PyDict_SetItem(fields, str_path, path) < 0
            || PyDict_SetItem(fields, str_priority, Py_None) < 0
            || PyDict_SetItem(fields, str_at, Py_None) < 0
            || record(self, who, str_spool_enqueue, fields) < 0
            || wake_spoolers(self, directory) < 0) goto out;
    /* path.encode("utf-8", "surrogateescape"): the bytes written when those are UTF-8 */
    result = fs_utf8 ? Py_NewRef(cpath)
                     : PyUnicode_AsEncodedString(path, "utf-8", "surrogateescape");
out:
    Py_XDECREF(body);
    Py_XDECREF(content);
    Py_XDECREF(writer);
    Py_XDECREF(master);
    Py_XDECREF(counter);
    Py_XDECREF(wall_obj);
    Py_XDECREF(sec);
    Py_XDECREF(rand);
    Py_XDECREF(hostname);
    Py_XDECREF(pid);
    Py_XDECREF(directory);
    Py_XDECREF(path);
    Py_XDECREF(cpath);
    Py_XDECREF(who);
    Py_XDECREF(fields);
    return result;
}

/* -- the spooler's task ---------------------------------------------------------------- */

/* `_read_all(fd, size)`: the file's content (normally one read) into a malloc'd buffer;
 * its length, or -1 on a read error (errno). */
static Py_ssize_t
read_all(int fd, Py_ssize_t size, char **out)
{
    Py_ssize_t cap = size > 4096 ? size : 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    Py_ssize_t want = cap;
    for (int first = 1;; first = 0) {
        if (len + want > cap) {
            char *more = realloc(buf, len + want);
            if (more == NULL) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = more;
            cap = len + want;
        }
        ssize_t n = read(fd, buf + len, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(buf);
            return -1;
        }
        len += n;
        if (n == 0 || (first && len >= size)) break;
        size -= n;
        if (!first && size <= 0) break;
        want = size > 4096 ? size : 4096;
    }
    *out = buf;
    return len;
}

/* Whether the vars block is a valid uwsgi dict (`decode_dict_prefix`'s error is None). */
static int
valid_dict(const unsigned char *data, Py_ssize_t end)
{
    Py_ssize_t pos = 0;
    while (pos < end) {
        if (pos + 2 >= end) return 0;
        Py_ssize_t klen = data[pos] | data[pos + 1] << 8;
        if (!klen) return 0;
        Py_ssize_t ke = pos + 2 + klen;
        if (ke + 2 > end) return 0;
        Py_ssize_t ve = ke + 2 + (data[ke] | data[ke + 1] << 8);
        if (ve > end) return 0;
        pos = ve;
    }
    return 1;
}

/* The spooler callable's argument: {"spooler_task_name": name, **vars, "body": body}. */
static PyObject *
task_dict(PyObject *name, const unsigned char *data, Py_ssize_t end, const char *body,
          Py_ssize_t body_len)
{
    PyObject *arg = PyDict_New(), *value = NULL;
    if (arg == NULL) return NULL;
    if ((value = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape")) == NULL
            || PyDict_SetItem(arg, str_task_name, value) < 0) goto fail;
    Py_CLEAR(value);
    for (Py_ssize_t pos = 0; pos < end;) {
        Py_ssize_t klen = data[pos] | data[pos + 1] << 8, ks = pos + 2, ke = ks + klen;
        Py_ssize_t vs = ke + 2, ve = vs + (data[ke] | data[ke + 1] << 8);
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + ks, klen);
        if (key == NULL) goto fail;
        value = PyBytes_FromStringAndSize((const char *)data + vs, ve - vs);
        int rc = value == NULL ? -1 : PyDict_SetItem(arg, key, value);
        Py_DECREF(key);
        Py_CLEAR(value);
        if (rc < 0) goto fail;
        pos = ve;
    }
    if (body_len) {
        if ((value = PyBytes_FromStringAndSize(body, body_len)) == NULL
                || PyDict_SetItem(arg, str_body, value) < 0) goto fail;
        Py_DECREF(value);
    }
    return arg;
fail:
    Py_XDECREF(value);
    Py_DECREF(arg);
    return NULL;
}

/* `getattr(inst.facade, "spooler", _MISSING)`, `missing` for _MISSING (NULL on error): the
 * running process's hook. The facade module's `__getattr__` finds it in the process's
 * `hooks` (the master's when the running process has none) unless its dict has one;
 * that lookup is done here for the facade's own module type, known by its name (the
 * subsystems may not import the facade). */
static PyObject *
spooler_function(PyObject *self, PyObject *proc)
{
    PyObject *facade = PyObject_GetAttr(INST(self), str_facade), *func = NULL;
    if (facade == NULL) return NULL;
    if (strcmp(Py_TYPE(facade)->tp_name, "_UwsgiModule") == 0 && PyModule_Check(facade)
            && PyDict_GetItemWithError(PyModule_GetDict(facade), str_spooler) == NULL
            && !PyErr_Occurred()) {
        PyObject *hooks = PyObject_GetAttr(proc, str_hooks);
        if (hooks == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            hooks = Py_NewRef(Py_None);
        }
        if (hooks == Py_None) {
            PyObject *master = PyObject_GetAttr(INST(self), str_master);
            Py_SETREF(hooks, master == NULL ? NULL : PyObject_GetAttr(master, str_hooks));
            Py_XDECREF(master);
        }
        if (hooks != NULL && PyDict_CheckExact(hooks)) {
            func = PyDict_GetItemWithError(hooks, str_spooler);
            func = func != NULL ? Py_NewRef(func) : PyErr_Occurred() ? NULL : Py_NewRef(missing);
        } else if (hooks != NULL) {  /* not a dict: the module's own __getattr__ */
            func = PyObject_GetAttr(facade, str_spooler);
        }
        Py_XDECREF(hooks);
    } else if (!PyErr_Occurred()) {
        func = PyObject_GetAttr(facade, str_spooler);
    }
    Py_DECREF(facade);
    if (func == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        func = Py_NewRef(missing);
    }
    return func;
}

/* `_python_spooler` for a valid task: 0 = no `uwsgi.spooler`, -2 = done, else keep;
 * -3 with an exception set (whatever left the call: the process ends). */
static int
python_spooler(PyObject *self, PyObject *name, const unsigned char *data, Py_ssize_t block,
               const char *body, Py_ssize_t body_len)
{
    PyObject *func = NULL, *arg = NULL, *chdir = CHDIR(self), *proc = NULL;
    PyObject *outcome = NULL;
    int ret = -3;
    if ((proc = PyObject_GetAttr(KERNEL(self), str_current)) == NULL
            || (func = spooler_function(self, proc)) == NULL) goto out;
    if (func == missing) {  /* no uwsgi.spooler in this process */
        ret = 0;
        goto out;
    }
    if ((arg = task_dict(name, data, block, body, body_len)) == NULL) goto out;
    int change = PyObject_IsTrue(chdir);
    if (change < 0) goto out;
    if (change && proc != Py_None) {  /* --spooler-chdir, for the task */
        if (PyObject_SetAttr(proc, str_cwd, chdir) < 0
                || call_void(KERNEL(self), str_apply_cwd, chdir, NULL) < 0) goto out;
    }
    if ((outcome = call_method(INST(self), str_call_python, func, arg)) == NULL) goto out;
    if (!PyTuple_Check(outcome) || PyTuple_GET_SIZE(outcome) != 2) {
        PyErr_SetString(PyExc_TypeError, "call_python returns (ok, result)");
        goto out;
    }
    int ok = PyObject_IsTrue(PyTuple_GET_ITEM(outcome, 0));
    if (ok < 0) goto out;
    PyObject *result = PyTuple_GET_ITEM(outcome, 1);
    ret = -1;
    if (ok && PyLong_Check(result)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(result, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            ret = -3;
            goto out;
        }
        if (!overflow) ret = (int)(unsigned int)(value & 0xFFFFFFFF);  /* (int) PyLong_AsLong */
    }
out:
    Py_XDECREF(func);
    Py_XDECREF(arg);
    Py_XDECREF(proc);
    Py_XDECREF(outcome);
    return ret;
}

/* `_finish`: close the task file (dropping the lock), the task no longer runs. */
static int
finish(PyObject *self, PyObject *slot, int fd, PyObject *path)
{
    close(fd);
    if (PyObject_SetAttr(slot, str_current_task, Py_None) < 0) return -1;
    if (PyDict_DelItem(BUSY(self), path) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
        PyErr_Clear();
    }
    return PyObject_SetAttr(slot, str_running, Py_False);
}

/* ProcessExit(reason[, code]) raised; NULL. */
static PyObject *
process_exit(PyObject *self, const char *reason, int code)
{
    PyObject *exc = PyObject_CallFunction(PROCESS_EXIT(self), "si", reason, code);
    if (exc != NULL) {
        PyErr_SetObject(PROCESS_EXIT(self), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* What a scan's tasks share: the slot, its directory (the str, and open as `dirfd` for
 * the system calls: what real uWSGI's chdir() to it gives), its process and that one's
 * pid and name. */
typedef struct {
    PyObject *slot, *directory, *proc, *pid, *who;
    int dirfd;
} Scan;

/* `_run_task` for a valid task file open (and locked) as fd, its content in data. */
static int
run_task(PyObject *self, Scan *scan, PyObject *name, PyObject *path, const char *cname,
         int fd, const unsigned char *data, Py_ssize_t len)
{
    PyObject *spoolers = SPOOLERS(self), *inst = INST(self), *slot = scan->slot;
    PyObject *dir = scan->directory, *pid = scan->pid, *who = scan->who;
    PyObject *current = NULL, *rc = NULL, *timer = NULL, *tasks = NULL;
    int owned = 0, rv = -1;  /* owned: the slot holds the file (process_died closes it) */
    if (PyObject_SetAttr(slot, str_running, Py_True) < 0) goto out;
    owned = 1;
    if ((current = Py_BuildValue("(iO)", fd, path)) == NULL
            || PyObject_SetAttr(slot, str_current_task, current) < 0
            || PyDict_SetItem(BUSY(self), path, slot) < 0) goto out;
    int quiet = QUIET(self);
    if (quiet < 0
            || (!quiet && log_line(self, "[spooler %S pid: %S] managing request %U ...", dir,
                                   pid, name) < 0)
            || record_path(self, who, str_spool_start, path, NULL, NULL) < 0) goto out;
    long long started = 0;  /* for the log line only */
    if (!quiet && int_now(self, CLOCK(self), str_time, &started) < 0) goto out;
    long long harakiri = HARAKIRI(self);
    if ((harakiri == -1 && PyErr_Occurred())
            || (harakiri > 0 && call_void(spoolers, str_arm_harakiri, slot, NULL) < 0)) goto out;
    Py_ssize_t block = data[1] | data[2] << 8;
    int ret = python_spooler(self, name, data + 4, block, (const char *)data + 4 + block,
                             len - 4 - block);
    if (ret == -3
            || (timer = PyObject_GetAttr(slot, str_harakiri_timer)) == NULL
            || (timer != Py_None && call_void(spoolers, str_disarm_harakiri, slot, NULL) < 0)
            || (rc = PyLong_FromLong(ret)) == NULL
            || record_path(self, who, str_spool_end, path, str_rc, rc) < 0) goto out;
    if (ret != 0) {
        PyObject *count = PyObject_GetAttr(slot, str_tasks);
        if (count != NULL) tasks = PyNumber_Add(count, one);
        Py_XDECREF(count);
        if (tasks == NULL || PyObject_SetAttr(slot, str_tasks, tasks) < 0
                || PyObject_SetAttr(scan->proc, str_tasks, tasks) < 0) goto out;
    }
    if (ret == SPOOL_OK) {
        long long now = 0;
        if (!quiet && (int_now(self, inst, str_wall, &now) < 0
                       || log_line(self, "[spooler %S pid: %S] done with task %U after %lld "
                                   "seconds", dir, pid, name, now - started) < 0)) goto out;
        if (unlinkat(scan->dirfd, cname, 0) < 0) {  /* `_destroy`: kill it if that fails */
            if (log_line(self, "unlink(): %s [core/spooler.c line 164]", strerror(errno)) < 0
                    || log_line(self, "[spooler] something horrible happened to the "
                                "spooler. Better to kill it.") < 0
                    || finish(self, slot, fd, path) < 0) goto out;
            process_exit(self, "exit(1)", 1);
            goto out;
        }
        if (record_path(self, who, str_spool_remove, path, str_reason, str_done) < 0) goto out;
    } else if (record_path(self, who, str_spool_retry, path, str_rc, rc) < 0) goto out;
    if (finish(self, slot, fd, path) < 0) goto out;
    long long max_tasks = MAX_TASKS(self);
    if (max_tasks == -1 && PyErr_Occurred()) goto out;
    long long done_tasks = max_tasks > 0 ? attr_int(slot, str_tasks) : 0;
    if (done_tasks == -1 && PyErr_Occurred()) goto out;
    if (max_tasks > 0 && done_tasks >= max_tasks) {
        if (log_line(self, "[spooler %S pid: %S] maximum number of tasks reached (%lld) "
                     "recycling ...", dir, pid, max_tasks) == 0)
            process_exit(self, "max-tasks", 0);
        goto out;
    }
    if (ret == 0 && log_line(self, "unable to find the spooler function, have you loaded it "
                             "into the spooler process ?") < 0) goto out;
    rv = 0;
out:
    if (!owned) close(fd);
    Py_XDECREF(current);
    Py_XDECREF(rc);
    Py_XDECREF(timer);
    Py_XDECREF(tasks);
    return rv;
}

/* `_manage`'s checks before a task file is read: 1 to go on, 0 done, 2 for `_manage`,
 * -1 on error. */
static int
pre_checks(PyObject *self, int dirfd, const char *cname, struct stat *st)
{
    if (fstatat(dirfd, cname, st, AT_SYMLINK_NOFOLLOW) < 0) return 0;
    double mtime = st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9;  /* os.stat's float */
    long long now;
    if (int_now(self, CLOCK(self), str_time, &now) < 0) return -1;
    if ((long long)mtime > now) return 0;  /* a task for the future (`at`) */
    if (S_ISDIR(st->st_mode)) {
        int ordered = ORDERED(self);
        if (ordered) return ordered < 0 ? -1 : 2;
    }
    if (!S_ISREG(st->st_mode)) return 0;
    return st->st_size - 4 > MAX_RW_COUNT(self) ? 2 : 1;  /* a body over 2 GB: `_manage` */
}

/* `_manage(slot, directory, name)` for one entry of the scan: 0, or -1 on error. */
static int
manage(PyObject *self, Scan *scan, PyObject *name)
{
    PyObject *faults = PyObject_GetAttr(INST(self), str_faults);
    if (faults == NULL) return -1;
    Py_DECREF(faults);
    Py_ssize_t name_len;
    const char *cname = faults == Py_None && fs_utf8 && PyUnicode_CheckExact(name)
                        ? PyUnicode_AsUTF8AndSize(name, &name_len) : NULL;
    if (cname == NULL || strlen(cname) != (size_t)name_len) {
        if (PyErr_Occurred()) {  /* a lone surrogate */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
            PyErr_Clear();
        }
        goto python;  /* a fault may be planned, or a name that is not plain */
    }
    struct stat st;
    int go = pre_checks(self, scan->dirfd, cname, &st);
    if (go != 1) {
        if (go == 2) goto python;
        return go;
    }
    PyObject *path = NULL;
    PyObject *pieces[] = {scan->directory, str_slash, name};
    char *data = NULL;
    int rv = -1;
    if (make_path(&path, NULL, pieces, 3, NULL) < 0) goto out;
    /* access(R_OK|W_OK) then open(O_RDWR): one call gives both answers here */
    int fd = openat(scan->dirfd, cname, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err != ENOENT && err != EACCES && err != EPERM && err != EROFS
                && log_line(self, "open(\"%U\"): %s [core/spooler.c line 623]", name,
                            strerror(err)) < 0) goto out;
        rv = 0;
        goto out;
    }
    int busy = PyDict_Contains(BUSY(self), path);
    if (busy != 0 || lock_file(fd, 0) < 0) {  /* another spooler runs it */
        close(fd);
        rv = busy < 0 ? -1 : 0;
        goto out;
    }
    Py_ssize_t len = read_all(fd, st.st_size, &data);
    const unsigned char *d = (const unsigned char *)data;
    if (len >= 0 && len < 4) {  /* the writer may still be busy: skipped */
        close(fd);
        rv = 0;
        goto out;
    }
    if (len < 0 || len < 4 + (d[1] | d[2] << 8) || !valid_dict(d + 4, d[1] | d[2] << 8)) {
        close(fd);  /* a read error, a short or invalid vars block: `_manage` again */
        rv = 1;
        goto out;
    }
    rv = run_task(self, scan, name, path, cname, fd, d, len);
out:
    free(data);
    Py_XDECREF(path);
    if (rv != 1) return rv;
python:;
    PyObject *done = PyObject_CallFunctionObjArgs(MANAGE(self), scan->slot, scan->directory,
                                                  name, NULL);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* `_manage_all(slot, directory, names)`: each entry of a scan of the spooler's own
 * directory; any other scan (a priority directory) goes to the Python method. */
static PyObject *
manage_all_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fallback = FALLBACK(self);
    if (nargs != 3 || !no_keywords(kwnames)
            || !PyUnicode_CheckExact(args[1]) || !PyList_CheckExact(args[2]))
        return fall_back(fallback, args, nargs, kwnames);
    Scan scan = {args[0], args[1], NULL, NULL, NULL, -1};
    PyObject *names = args[2], *dir = NULL, *cdir = NULL, *result = NULL;
    if ((dir = PyObject_GetAttr(scan.slot, str_dir)) == NULL) goto out;
    int other = PyObject_RichCompareBool(dir, scan.directory, Py_NE);
    if (other < 0
            || (cdir = PyUnicode_EncodeFSDefault(scan.directory)) == NULL
            || (scan.proc = PyObject_GetAttr(scan.slot, str_proc)) == NULL) goto out;
    if (!other && scan.proc != Py_None)
        scan.dirfd = open(PyBytes_AS_STRING(cdir), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (scan.dirfd < 0) {
        result = fall_back(fallback, args, nargs, kwnames);
        goto out;
    }
    if ((scan.pid = PyObject_GetAttr(scan.proc, str_pid)) == NULL
            || (scan.who = PyObject_GetAttr(scan.proc, str_name)) == NULL) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
        PyObject *name = Py_NewRef(PyList_GET_ITEM(names, i));
        int rc = manage(self, &scan, name);
        Py_DECREF(name);
        if (rc < 0) goto out;
    }
    result = Py_NewRef(Py_None);
out:
    if (scan.dirfd >= 0) close(scan.dirfd);
    Py_XDECREF(dir);
    Py_XDECREF(cdir);
    Py_XDECREF(scan.proc);
    Py_XDECREF(scan.pid);
    Py_XDECREF(scan.who);
    return result;
}

/* -- readdir order ---------------------------------------------------------------------- */

static uint32_t crc_table[256];

/* zlib.crc32(data, value) */
static uint32_t
crc32_of(const unsigned char *data, Py_ssize_t len, uint32_t value)
{
    uint32_t crc = ~value;
    while (len--) crc = crc_table[(crc ^ *data++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

typedef struct {
    uint32_t crc;
    PyObject *name;
} Keyed;

static int
keyed_cmp(const void *a, const void *b)
{
    const Keyed *x = a, *y = b;
    if (x->crc != y->crc) return x->crc < y->crc ? -1 : 1;
    return PyUnicode_Compare(x->name, y->name);  /* str vs str: no error */
}

/* readdir_order(names, seed): `sorted(names, key=lambda n: (zlib.crc32(n.encode("utf-8",
 * "surrogateescape"), seed), n))`, the hash order a scan sees (spooler.py). */
static PyObject *
readdir_order(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "readdir_order(names: list, seed: int)");
        return NULL;
    }
    PyObject *names = args[0];
    unsigned long seed = PyLong_AsUnsignedLong(args[1]);
    if (seed == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(names);
    Keyed *keyed = PyMem_Malloc((n ? n : 1) * sizeof(Keyed));
    if (keyed == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(names, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "readdir_order: names are str");
            goto done;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &len);
        if (utf8 != NULL) {
            keyed[i].crc = crc32_of((const unsigned char *)utf8, len, (uint32_t)seed);
        } else {  /* a lone surrogate: the bytes it came from */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) goto done;
            PyErr_Clear();
            PyObject *raw = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape");
            if (raw == NULL) goto done;
            keyed[i].crc = crc32_of((const unsigned char *)PyBytes_AS_STRING(raw),
                                    PyBytes_GET_SIZE(raw), (uint32_t)seed);
            Py_DECREF(raw);
        }
        keyed[i].name = name;
    }
    qsort(keyed, n, sizeof(Keyed), keyed_cmp);
    if ((out = PyList_New(n)) != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(out, i, Py_NewRef(keyed[i].name));
    }
done:
    PyMem_Free(keyed);
    return out;
}

/* -- the builtin functions ------------------------------------------------------------ */

static PyMethodDef defs[] = {
    {"spool", FASTCALL(spool_call), NULL},
    {"_manage_all", FASTCALL(manage_all_call), NULL},
};

/* The builtin function defs[index] over `state` (see STATE). */
static PyObject *
make(int index, PyObject *state)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != STATE_SIZE
            || !PyDict_CheckExact(COUNTERS(state)) || !PyList_CheckExact(SLOTS(state))
            || !PyDict_CheckExact(BUSY(state)) || !PyType_Check(CLOCK_TYPE(state))
            || !PyTuple_CheckExact(STATE(state, 11)) || PyTuple_GET_SIZE(STATE(state, 11)) != 6) {
        PyErr_Format(PyExc_TypeError, "%s: the state is Spoolers._c_state()",
                     defs[index].ml_name);
        return NULL;
    }
    return PyCFunction_NewEx(&defs[index], state, NULL);
}

static PyObject *
new_spooler(PyObject *module, PyObject *state) { return make(0, state); }

static PyObject *
new_manager(PyObject *module, PyObject *state) { return make(1, state); }

static PyMethodDef methods[] = {
    {"spooler", new_spooler, METH_O, "uwsgi.spool's fast path (fallback: the facade's)."},
    {"manager", new_manager, METH_O,
     "Spoolers._manage_all's fast path (fallback: the method)."},
    {"readdir_order", (PyCFunction)(void (*)(void))readdir_order, METH_FASTCALL,
     "The order of a directory's names in a scan (spooler.py's readdir_order)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cspooler",
    "C accelerator for simuwsgi.subsystems.spooler (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cspooler(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_now, "now") INTERN(str_current, "current")
    INTERN(str_name, "name") INTERN(str_faults, "faults") INTERN(str_master, "master")
    INTERN(str_time, "time") INTERN(str_getrandbits, "getrandbits")
    INTERN(str_hostname, "hostname") INTERN(str_pid, "pid") INTERN(str_dir, "dir")
    INTERN(str_log, "log") INTERN(str_path, "path") INTERN(str_priority, "priority")
    INTERN(str_at, "at") INTERN(str_spool_enqueue, "spool.enqueue") INTERN(str_proc, "proc")
    INTERN(str_alive, "alive") INTERN(str_running, "running") INTERN(str_waiting, "waiting")
    INTERN(str_woken, "woken") INTERN(str_wakeup, "wakeup")
    INTERN(str_interrupt, "_interrupt")
    INTERN(str_facade, "facade") INTERN(str_spooler, "spooler")
    INTERN(str_current_task, "current") INTERN(str_spool_start, "spool.start")
    INTERN(str_spool_end, "spool.end") INTERN(str_spool_retry, "spool.retry")
    INTERN(str_spool_remove, "spool.remove") INTERN(str_arm_harakiri, "_arm_harakiri")
    INTERN(str_disarm_harakiri, "_disarm_harakiri")
    INTERN(str_harakiri_timer, "harakiri_timer")
    INTERN(str_task_name, "spooler_task_name") INTERN(str_cwd, "cwd")
    INTERN(str_apply_cwd, "apply_cwd") INTERN(str_call_python, "call_python")
    INTERN(str_rc, "rc") INTERN(str_reason, "reason") INTERN(str_done, "done")
    INTERN(str_tasks, "tasks") INTERN(str_wall, "wall")
    INTERN(str_body, "body") INTERN(str_hooks, "hooks") INTERN(str_wall_offset, "wall_offset")
    INTERN(str_kernel, "kernel")
    INTERN(str_prefix, "/uwsgi_spoolfile_on_") INTERN(str_slash, "/")
#undef INTERN
    if ((bytes_body = PyBytes_FromString("body")) == NULL || (one = PyLong_FromLong(1)) == NULL
            || (bits31 = PyLong_FromLong(31)) == NULL
            || (missing = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)) == NULL)
        return NULL;
    const char *encoding = Py_FileSystemDefaultEncoding;
    fs_utf8 = encoding != NULL && (strcmp(encoding, "utf-8") == 0 || strcmp(encoding, "utf8") == 0);
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    return PyModule_Create(&module);
}
