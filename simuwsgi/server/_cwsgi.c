/*
 * Optional C accelerator for the WSGI call of a simulated request (simuwsgi.server.wire
 * and simuwsgi.server.workers).
 *
 * What it models is what its Python twins model (uWSGI's `py_uwsgi_spit`, the response
 * writer of core/writer.c, `uwsgi_response_subhandler_wsgi`); this module does the same
 * steps without a Python frame:
 *
 *   ConnectionCore: the C base of wire.Connection, holding its state (the fields of
 *       wire._ConnectionCore, the Python twin, under the same names) and its hot
 *       methods: spit, _prepare, _add_header, _append, uwsgi_write, _header_block,
 *       write_headers, _send_headers, write_body, finish, log_stats, raw. The rare ones
 *       (req_error, _fail, send_raw, sendfile, write_exception, disconnect) stay
 *       Python in the subclass, and this code calls them by name.
 *   Builtin(name, fn): wire.BuiltinFunction, a callable whose repr and type name are a
 *       C function's; calling it calls fn.
 *   spitter(kernel, fallback): the body of `uwsgi.start_response` (misc's uwsgi_spit):
 *       the running request's connection's spit; anything else (outside a request, a
 *       connection of another kind) goes to the Python function `fallback`.
 *   writer(kernel, fallback): the same for the write callable start_response returns
 *       (misc's uwsgi_write): the running request's connection's uwsgi_write.
 *   app_caller(helpers): workers._call_app(inst, w, req) for its common case: the
 *       request's app, the misc subsystem's start_response, the environ (the packet's
 *       vars, wsgi.input made as workers._Input.__init__ makes it, the per-instance
 *       keys), uwsgi.env, the app's call, the
 *       response loop over bytes or an iterable (close() at the end) and the result.
 *       A missing app or misc goes to the Python twin (helpers["fallback"]), a
 *       wsgi.file_wrapper response to workers._respond, a reply to be parsed like a
 *       client to workers._outcome; an exception is handled as the twin's `except`
 *       clauses do (CONTROL goes on, SystemExit ends the process, anything else is
 *       the exception being handled while workers._manage_exception logs it).
 *
 * The Python code stays the one description: SIMUWSGI_PURE_PYTHON=1 (or a failed
 * build) runs it alone, and tests/test_wsgi_accel.py runs random request programs on
 * both and compares replies, logs and trace digests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

#include "../_core/_cutil.h"
#include "_cattr.h"

#define PAGE_SIZE_ 4096


static PyObject *str_int, *str_append, *str_env, *str_content_length, *str_wsgi_input;
static PyObject *str_resolve, *str_misc, *str_join, *str_crlf, *str_colon, *str_end;
static PyObject *str_write_policy, *str_writer_hooks;
static PyObject *str_headers_limit, *str_environs;
static PyObject *empty_str, *empty_tuple, *empty_bytes, *unknown;
static PyObject *zero, *two;

/* the attributes read and written here (see _cattr.h) */
#define ATTRS(X) \
    X(_cl) X(_conn) X(app) X(app_id) X(apps) X(body) X(close) X(conn) X(cores) X(current) \
    X(facade) X(items) X(lazy_apps) X(length) X(memo) X(opts) X(protocol) X(request) \
    X(_seen) X(spit) X(subsystems) X(switches) X(writeout) X(env_vars) X(vars) X(net) \
    X(control) X(scheme) X(text_vars) X(_text) X(wsgi_env_holy)
ATTRS(ATTR_DECLARE)

/* -- the connection ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *inst, *req, *worker, *write, *wire, *raw_writes, *status, *headers;
    PyObject *sendfile_obj, *body;
    Py_ssize_t status_code, header_cnt, headers_size, switches, hcap, hpos;
    Py_ssize_t sendfile_chunk, response_size, write_errors, app_id;
    char headers_sent, closed, altered, via_sendfile;
    char ignore_body;  /* a route answered: body writes do nothing */
    Py_ssize_t hooks;  /* inst.writer_hooks, read once (interface.HOOK_*) */
    Py_ssize_t routing;  /* Connection._routing (wire._ERROR_ROUTING...) */
} Conn;

/* interface.HOOK_*: what the writer asks the Python side */
#define HOOK_FILTER 1    /* each header goes by Connection._removed */
#define HOOK_EXTRA 2     /* extra header lines: Connection._extra_headers */
#define HOOK_ERROR 4     /* the error routes as a status is prepared */
#define HOOK_RESPONSE 8  /* the response routes as the headers go out */

static PyTypeObject ConnType;

#define CONN_OBJECTS(X) X(inst) X(req) X(worker) X(write) X(wire) X(raw_writes) \
    X(status) X(headers) X(sendfile_obj) X(body)

static int
conn_traverse(Conn *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    CONN_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int
conn_clear(Conn *self)
{
#define CLEAR(f) Py_CLEAR(self->f);
    CONN_OBJECTS(CLEAR)
#undef CLEAR
    return 0;
}

static void
conn_dealloc(Conn *self)
{
    PyObject_GC_UnTrack(self);
    conn_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define SET(field, value) do { PyObject *_old = self->field; self->field = (value); \
    Py_XDECREF(_old); } while (0)

/* Connection.__init__: the fresh state of wire._ConnectionCore. */
static int
conn_fill(Conn *self, PyObject *inst, PyObject *req, PyObject *worker, PyObject *write)
{
    PyObject *wire = PyList_New(0), *raw = PyList_New(0), *headers = PyList_New(0);
    PyObject *body = PyList_New(0);
    if (wire == NULL || raw == NULL || headers == NULL || body == NULL) {
        Py_XDECREF(wire); Py_XDECREF(raw); Py_XDECREF(headers); Py_XDECREF(body);
        return -1;
    }
    SET(inst, Py_NewRef(inst));
    SET(req, Py_NewRef(req));
    SET(worker, Py_NewRef(worker));
    SET(write, Py_NewRef(write));
    SET(wire, wire);
    SET(raw_writes, raw);
    SET(status, Py_NewRef(Py_None));
    SET(headers, headers);
    SET(sendfile_obj, Py_NewRef(Py_None));
    SET(body, body);
    self->status_code = 500;
    self->header_cnt = self->headers_size = self->switches = self->hcap = self->hpos = 0;
    self->sendfile_chunk = self->response_size = self->write_errors = self->app_id = 0;
    self->headers_sent = self->closed = self->altered = self->via_sendfile = 0;
    self->ignore_body = 0;
    self->hooks = self->routing = 0;
    PyObject *hooks = PyObject_GetAttr(inst, str_writer_hooks);
    if (hooks == NULL) {
        PyErr_Clear();  /* an instance without it (a test's stand-in): no hooks */
        return 0;
    }
    self->hooks = PyLong_AsSsize_t(hooks);
    Py_DECREF(hooks);
    return self->hooks == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
conn_init(Conn *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"inst", "req", "worker", "write", NULL};
    PyObject *inst, *req, *worker = Py_None, *write = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:Connection", kwlist, &inst, &req,
                                     &worker, &write)) {
        return -1;
    }
    return conn_fill(self, inst, req, worker, write);
}

/* list.append, or the append of a list subclass (net's streamed wire) */
static int
append(PyObject *list, PyObject *item)
{
    if (PyList_CheckExact(list)) {
        return PyList_Append(list, item);
    }
    PyObject *r = PyObject_CallMethodOneArg(list, str_append, item);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* self._fail(what, line): the Python method (logs, counts); its truth, or -1 */
static int
conn_fail(Conn *self, const char *what, int line)
{
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_fail", "si", what, line);
    if (r == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    return truth;
}

/* _append: uwsgi_buffer_append on the header buffer; 1, 0 (refused) or -1 */
static int
conn_append_size(Conn *self, Py_ssize_t size)
{
    if (size > self->hcap - self->hpos) {
        PyObject *opts = attr_get(&a_opts, self->inst);
        if (opts == NULL) {
            return -1;
        }
        PyObject *value = PyObject_CallMethodObjArgs(opts, str_int, str_headers_limit, zero,
                                                     NULL);
        Py_DECREF(opts);
        if (value == NULL) {
            return -1;
        }
        Py_ssize_t limit = PyLong_AsSsize_t(value);
        Py_DECREF(value);
        if (limit == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (limit == 0) {
            limit = 65535;
        }
        Py_ssize_t chunk = size > PAGE_SIZE_ ? size : PAGE_SIZE_;
        if (self->hcap + chunk > limit) {
            if (size < PAGE_SIZE_) {
                chunk = size;
            }
            if (self->hcap + chunk > limit) {
                return 0;
            }
        }
        self->hcap += chunk;
    }
    self->hpos += size;
    return 1;
}

static PyObject *
truth(int r)
{
    if (r < 0) {
        return NULL;
    }
    return Py_NewRef(r ? Py_True : Py_False);
}

static PyObject *
conn_append_meth(Conn *self, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return truth(conn_append_size(self, size));
}

static PyObject *phrases;  /* wire._PHRASES */

/* self.<name>(): a Python hook's truth, or -1 */
static int
conn_hook(Conn *self, const char *name)
{
    PyObject *r = PyObject_CallMethod((PyObject *)self, name, NULL);
    if (r == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    return truth;
}

/* _prepare: uwsgi_response_prepare_headers for the status `raw` (bytes); `text` is its
 * str when known (the latin-1 decoding of raw), else NULL. */
static int
conn_prepare(Conn *self, PyObject *raw, PyObject *text)
{
    Py_ssize_t len = PyBytes_GET_SIZE(raw);
    if (self->headers_sent || self->headers_size || self->response_size || len < 3
            || self->write_errors) {
        return 0;
    }
    if (!self->hcap) {
        self->hcap = PAGE_SIZE_;
    }
    self->hpos = 0;
    self->header_cnt = 0;
    PyObject *headers = PyList_New(0);
    if (headers == NULL) {
        return -1;
    }
    SET(headers, headers);
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(raw);
    self->status_code = 100 * (s[0] - 48) + 10 * (s[1] - 48) + (s[2] - 48);
    if (self->hooks & HOOK_ERROR) {  /* a rule that ended the request: nothing prepared */
        int ended = conn_hook(self, "_error_routes");
        if (ended) {
            return ended < 0 ? -1 : 0;
        }
    }
    PyObject *status;
    if (len <= 4) {
        PyObject *code = PyUnicode_DecodeLatin1((const char *)s, 3, NULL);
        if (code == NULL) {
            return -1;
        }
        PyObject *phrase = PyDict_GetItemWithError(phrases, code);
        if (phrase == NULL && PyErr_Occurred()) {
            Py_DECREF(code);
            return -1;
        }
        status = PyUnicode_FromFormat("%U %U", code, phrase != NULL ? phrase : unknown);
        Py_DECREF(code);
    }
    else if (text != NULL) {
        status = Py_NewRef(text);
    }
    else {
        status = PyUnicode_DecodeLatin1((const char *)s, len, NULL);
    }
    if (status == NULL) {
        return -1;
    }
    PyObject *proto_text = attr_get(&a_protocol, self->req);
    if (proto_text == NULL) {
        Py_DECREF(status);
        return -1;
    }
    PyObject *protocol = PyUnicode_AsLatin1String(proto_text);
    Py_DECREF(proto_text);
    if (protocol == NULL) {
        Py_DECREF(status);
        return -1;
    }
    Py_ssize_t plen = PyBytes_GET_SIZE(protocol) ? PyBytes_GET_SIZE(protocol) : 8;
    Py_DECREF(protocol);
    int r = conn_append_size(self, plen + 1 + PyUnicode_GET_LENGTH(status) + 2);
    if (r <= 0) {
        Py_DECREF(status);
        if (r == 0) {
            self->write_errors++;
        }
        return r;
    }
    SET(status, status);
    return 1;
}

static PyObject *
conn_prepare_meth(Conn *self, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_prepare() takes the status as bytes");
        return NULL;
    }
    return truth(conn_prepare(self, arg, NULL));
}

/* _add_header(key, value): uwsgi_response_add_header_do, both str */
static int
conn_add_header(Conn *self, PyObject *key, PyObject *value)
{
    if (self->headers_sent || self->headers_size || self->response_size
            || self->write_errors) {
        return 0;
    }
    if (self->hooks & HOOK_FILTER) {  /* --rem-header, a route's delheader: _removed */
        PyObject *x = PyObject_CallMethod((PyObject *)self, "_removed", "O", key);
        int removed = x == NULL ? -1 : PyObject_IsTrue(x);
        Py_XDECREF(x);
        if (removed) {
            return removed < 0 ? -1 : 1;
        }
    }
    if (!self->hcap) {
        self->hcap = PAGE_SIZE_;
    }
    Py_ssize_t klen = PyObject_Length(key), vlen = PyObject_Length(value);
    if (klen < 0 || vlen < 0) {
        return -1;
    }
    int r = conn_append_size(self, klen + 2 + vlen + 2);
    if (r <= 0) {
        if (r == 0) {
            self->write_errors++;
        }
        return r;
    }
    self->header_cnt++;
    PyObject *pair = PyTuple_Pack(2, key, value);
    if (pair == NULL) {
        return -1;
    }
    r = append(self->headers, pair);
    Py_DECREF(pair);
    return r < 0 ? -1 : 1;
}

static PyObject *
conn_add_header_meth(Conn *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_add_header() takes 2 arguments");
        return NULL;
    }
    return truth(conn_add_header(self, args[0], args[1]));
}

/* _header_block: the status line and the headers, CRLF-separated, latin-1 */
static PyObject *
conn_header_block(Conn *self)
{
    PyObject *proto = attr_get(&a_protocol, self->req);
    if (proto == NULL) {
        return NULL;
    }
    PyObject *first = PyUnicode_FromFormat("%S %S", proto, self->status);
    Py_DECREF(proto);
    if (first == NULL) {
        return NULL;
    }
    PyObject *headers = PySequence_Fast(self->headers, "headers");
    if (headers == NULL) {
        Py_DECREF(first);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject *parts = PyList_New(2 + 2 * n);
    if (parts == NULL) {
        Py_DECREF(first);
        Py_DECREF(headers);
        return NULL;
    }
    PyList_SET_ITEM(parts, 0, first);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyUnicode_Join(str_colon, PySequence_Fast_GET_ITEM(headers, i));
        if (line == NULL) {
            Py_DECREF(parts);
            Py_DECREF(headers);
            return NULL;
        }
        PyList_SET_ITEM(parts, 1 + 2 * i, Py_NewRef(str_crlf));
        PyList_SET_ITEM(parts, 2 + 2 * i, line);
    }
    Py_DECREF(headers);
    PyList_SET_ITEM(parts, 1 + 2 * n, Py_NewRef(str_end));
    PyObject *text = PyUnicode_Join(empty_str, parts);
    Py_DECREF(parts);
    if (text == NULL) {
        return NULL;
    }
    PyObject *block = PyUnicode_AsLatin1String(text);
    Py_DECREF(text);
    return block;
}

static int
conn_send_headers(Conn *self)
{
    PyObject *block = conn_header_block(self);
    if (block == NULL) {
        return -1;
    }
    if (append(self->wire, block) < 0) {
        Py_DECREF(block);
        return -1;
    }
    self->headers_size += PyBytes_GET_SIZE(block);
    Py_DECREF(block);
    self->headers_sent = 1;
    return 0;
}

/* --add-header's lines and a route's addheader lines, added as the headers go out
 * (Connection._extra_headers, when the instance may have any); 1, 0 (write error,
 * counted) or -1 */
static int
conn_extra_headers(Conn *self)
{
    return self->hooks & HOOK_EXTRA ? conn_hook(self, "_extra_headers") : 1;
}

/* the response routes, once, as the headers go out (Connection._response_routes):
 * 1 when a rule ended the request (its body writes are then ignored), 0, or -1 */
static int
conn_response_routes(Conn *self)
{
    return self->hooks & HOOK_RESPONSE ? conn_hook(self, "_response_routes") : 0;
}

/* write_headers: uwsgi_response_write_headers_do; 1, 0 (write error) or -1 */
static int
conn_write_headers(Conn *self)
{
    if (self->headers_sent || self->status == Py_None || self->response_size
            || self->write_errors) {
        return 1;
    }
    int r = conn_response_routes(self);
    if (r) {
        return r;  /* ended by a rule (uWSGI's -1, with no write error): 1 */
    }
    r = conn_extra_headers(self);
    if (r <= 0) {
        return r;
    }
    r = conn_append_size(self, 2);
    if (r <= 0) {
        if (r == 0) {
            self->write_errors++;
        }
        return r;
    }
    if (self->closed) {
        return conn_fail(self, "uwsgi_response_write_headers_do()", 248);
    }
    return conn_send_headers(self) < 0 ? -1 : 1;
}

/* write_body: uwsgi_response_write_body_do; 1, 0 (write error) or -1 */
static int
conn_write_body(Conn *self, PyObject *data)
{
    if (self->write_errors) {
        return 0;
    }
    if (self->ignore_body) {
        return 1;
    }
    if (!self->headers_sent) {
        int ended = conn_response_routes(self);
        if (ended) {
            return ended;
        }
    }
    if (!self->headers_sent && self->status != Py_None && !self->response_size) {
        int r = conn_extra_headers(self);
        if (r <= 0) {
            return r;
        }
        r = conn_append_size(self, 2);
        if (r <= 0) {
            if (r == 0) {
                self->write_errors++;
            }
            return r;
        }
        Py_ssize_t size = PyObject_Length(data);
        if (size < 0) {
            return -1;
        }
        if (self->closed) {
            if (size) {
                return conn_fail(self, "uwsgi_response_writev_headers_and_body_do()", 306);
            }
            self->write_errors++;  /* counted by write_headers_do, then by its caller */
            return conn_fail(self, "uwsgi_response_write_headers_do()", 248);
        }
        if (conn_send_headers(self) < 0) {
            return -1;
        }
    }
    Py_ssize_t size = PyObject_Length(data);
    if (size < 0) {
        return -1;
    }
    if (!size) {
        return 1;
    }
    if (self->closed) {
        return conn_fail(self, "uwsgi_response_write_body_do()", 429);
    }
    if (append(self->wire, data) < 0 || append(self->body, data) < 0) {
        return -1;
    }
    self->response_size += size;
    return 1;
}

static PyObject *
conn_write_body_meth(Conn *self, PyObject *data)
{
    return truth(conn_write_body(self, data));
}

static PyObject *
conn_write_headers_meth(Conn *self, PyObject *unused)
{
    return truth(conn_write_headers(self));
}

static PyObject *
conn_send_headers_meth(Conn *self, PyObject *unused)
{
    if (conn_send_headers(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
conn_header_block_meth(Conn *self, PyObject *unused)
{
    return conn_header_block(self);
}

/* finish: uwsgi_close_request sends the headers still pending */
static int
conn_finish(Conn *self)
{
    if (!self->headers_sent && !self->response_size) {
        return conn_write_headers(self) < 0 ? -1 : 0;
    }
    return 0;
}

static PyObject *
conn_finish_meth(Conn *self, PyObject *unused)
{
    if (conn_finish(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* uwsgi_write(*args): bytes only, anything else ignored */
static PyObject *
conn_uwsgi_write(Conn *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs && PyBytes_Check(args[0])) {
        if (conn_write_body(self, args[0]) < 0) {
            return NULL;
        }
        if (self->write_errors) {  /* the policy's answer: Connection.write_raises */
            PyObject *x = PyObject_CallMethod((PyObject *)self, "write_raises", NULL);
            int raises = x == NULL ? -1 : PyObject_IsTrue(x);
            Py_XDECREF(x);
            if (raises < 0) {
                return NULL;
            }
            if (raises) {
                PyErr_SetString(PyExc_OSError, "write error");
                return NULL;
            }
        }
    }
    Py_RETURN_NONE;
}

static PyObject *header_pair;  /* wire._header_pair */

/* Raise `type(msg)` as `raise ... from None` in an `except` clause does: the error
 * pending now is its (suppressed) context. */
static void
raise_from_none(PyObject *type, const char *msg)
{
    PyObject *etype, *evalue, *etb;
    PyErr_Fetch(&etype, &evalue, &etb);
    PyErr_NormalizeException(&etype, &evalue, &etb);
    if (etb != NULL && evalue != NULL) {
        PyException_SetTraceback(evalue, etb);
    }
    Py_XDECREF(etype);
    Py_XDECREF(etb);
    PyObject *exc = PyObject_CallFunction(type, "s", msg);
    if (exc == NULL) {
        Py_XDECREF(evalue);
        return;
    }
    PyException_SetContext(exc, evalue);  /* steals evalue */
    ((PyBaseExceptionObject *)exc)->suppress_context = 1;
    PyErr_Restore(Py_NewRef(type), exc, NULL);  /* no other context: Restore chains none */
}

/* spit(args, kw): py_uwsgi_spit, its checks in uWSGI's order; the write callable */
static PyObject *
conn_spit(Conn *self, PyObject *args, PyObject *kw)
{
    if (kw != NULL) {
        int has = PyObject_IsTrue(kw);
        if (has < 0) {
            return NULL;
        }
        if (has) {
            PyErr_SetString(PyExc_TypeError, "uwsgi_spit() takes no keyword arguments");
            return NULL;
        }
    }
    if (self->headers_sent) {
        PyErr_SetString(PyExc_OSError, "headers already sent");
        return NULL;
    }
    if (!PyTuple_Check(args)) {
        PyErr_SetString(PyExc_TypeError, "spit() takes the arguments as a tuple");
        return NULL;
    }
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    PyObject *exc_info = nargs > 2 ? PyTuple_GET_ITEM(args, 2) : Py_None;
    if (!nargs) {
        PyErr_SetString(PyExc_TypeError, "start_response() takes at least 2 arguments");
        return NULL;
    }
    PyObject *status = PyTuple_GET_ITEM(args, 0);
    if (!PyUnicode_Check(status)) {
        PyErr_SetString(PyExc_TypeError, "http status must be a string");
        return NULL;
    }
    PyObject *raw = PyUnicode_AsLatin1String(status);
    if (raw == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            raise_from_none(PyExc_TypeError, "http status string must be encodable in latin1");
        }
        return NULL;
    }
    int prepared = conn_prepare(self, raw, PyUnicode_CheckExact(status) ? status : NULL);
    Py_DECREF(raw);
    if (prepared < 0) {
        return NULL;
    }
    if (prepared) {
        if (nargs < 2) {
            PyErr_SetString(PyExc_TypeError, "start_response() takes at least 2 arguments");
            return NULL;
        }
        PyObject *headers = PyTuple_GET_ITEM(args, 1);
        if (!PyList_Check(headers)) {
            PyErr_SetString(PyExc_TypeError, "http headers must be in a python list");
            return NULL;
        }
        PyObject *items = PySequence_List(headers);
        if (items == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
            PyObject *item = PyList_GET_ITEM(items, i), *key, *value;
            /* the common case, plain ASCII str: already what latin-1 gives back */
            if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2
                    && PyUnicode_CheckExact(key = PyTuple_GET_ITEM(item, 0))
                    && PyUnicode_CheckExact(value = PyTuple_GET_ITEM(item, 1))
                    && PyUnicode_IS_ASCII(key) && PyUnicode_IS_ASCII(value)) {
                Py_INCREF(item);
            }
            else if ((item = PyObject_CallOneArg(header_pair, item)) == NULL) {
                Py_DECREF(items);
                return NULL;
            }
            int r = conn_add_header(self, PyTuple_GET_ITEM(item, 0),
                                    PyTuple_GET_ITEM(item, 1));
            Py_DECREF(item);
            if (r <= 0) {
                Py_DECREF(items);
                if (r == 0) {
                    PyErr_SetString(PyExc_TypeError, "unable to add header to the response");
                }
                return NULL;
            }
        }
        Py_DECREF(items);
    }
    if (PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) > 2
            && PyExceptionInstance_Check(PyTuple_GET_ITEM(exc_info, 1))) {
        PyErr_SetString(PyExc_SystemError, "<built-in function uwsgi_spit> returned a result "
                        "with an exception set");
        PyObject *etype, *evalue, *etb;
        PyErr_Fetch(&etype, &evalue, &etb);
        PyErr_NormalizeException(&etype, &evalue, &etb);
        PyException_SetCause(evalue, Py_NewRef(PyTuple_GET_ITEM(exc_info, 1)));
        PyErr_Restore(etype, evalue, etb);
        return NULL;
    }
    if (self->write != Py_None) {
        return Py_NewRef(self->write);
    }
    return PyObject_GetAttrString((PyObject *)self, "uwsgi_write");
}

static PyObject *
conn_spit_meth(Conn *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "spit() takes 2 arguments (args, kw)");
        return NULL;
    }
    return conn_spit(self, args[0], args[1] == Py_None ? NULL : args[1]);
}

static PyObject *
conn_log_stats(Conn *self, void *closure)
{
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:n,s:O,s:n}",
                         "app_id", self->app_id, "status", self->status_code,
                         "response_size", self->response_size,
                         "headers_size", self->headers_size,
                         "header_cnt", self->header_cnt, "switches", self->switches,
                         "via_sendfile", self->via_sendfile ? Py_True : Py_False,
                         "write_errors", self->write_errors);
}

static PyMethodDef conn_methods[] = {
    {"spit", (PyCFunction)(void (*)(void))conn_spit_meth, METH_FASTCALL,
     "py_uwsgi_spit: start_response(*args, **kw); the write callable."},
    {"_prepare", (PyCFunction)conn_prepare_meth, METH_O,
     "uwsgi_response_prepare_headers for a bytes status."},
    {"_add_header", (PyCFunction)(void (*)(void))conn_add_header_meth, METH_FASTCALL,
     "uwsgi_response_add_header_do."},
    {"_append", (PyCFunction)conn_append_meth, METH_O, "uwsgi_buffer_append's size."},
    {"uwsgi_write", (PyCFunction)(void (*)(void))conn_uwsgi_write, METH_FASTCALL,
     "py_uwsgi_write."},
    {"_header_block", (PyCFunction)conn_header_block_meth, METH_NOARGS, NULL},
    {"_send_headers", (PyCFunction)conn_send_headers_meth, METH_NOARGS, NULL},
    {"write_headers", (PyCFunction)conn_write_headers_meth, METH_NOARGS,
     "uwsgi_response_write_headers_do."},
    {"write_body", (PyCFunction)conn_write_body_meth, METH_O,
     "uwsgi_response_write_body_do; False on a write error."},
    {"finish", (PyCFunction)conn_finish_meth, METH_NOARGS,
     "uwsgi_close_request: headers still pending go out now."},
    {NULL},
};

#define OBJ(name) {#name, T_OBJECT, offsetof(Conn, name), 0, NULL},
#define INT(name, field) {name, T_PYSSIZET, offsetof(Conn, field), 0, NULL},
#define BOOL(name) {#name, T_BOOL, offsetof(Conn, name), 0, NULL},
static PyMemberDef conn_members[] = {
    CONN_OBJECTS(OBJ)
    INT("status_code", status_code) INT("header_cnt", header_cnt)
    INT("headers_size", headers_size) INT("switches", switches) INT("_hcap", hcap)
    INT("_hpos", hpos) INT("sendfile_chunk", sendfile_chunk)
    INT("response_size", response_size) INT("write_errors", write_errors)
    INT("app_id", app_id)
    BOOL(headers_sent) BOOL(closed) BOOL(altered) BOOL(via_sendfile) BOOL(ignore_body)
    INT("hooks", hooks) INT("_routing", routing)
    {NULL},
};

static PyObject *
conn_raw(Conn *self, void *closure)
{
    return PyObject_CallMethodOneArg(empty_bytes, str_join, self->wire);
}

static PyGetSetDef conn_getset[] = {
    {"log_stats", (getter)conn_log_stats, NULL,
     "The request's counters the log line shows.", NULL},
    {"raw", (getter)conn_raw, NULL, "Every byte written on the socket.", NULL},
    {NULL},
};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi.server._cwsgi.ConnectionCore",
    .tp_basicsize = sizeof(Conn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The state and hot methods of wire.Connection (see _cwsgi.c).",
    .tp_traverse = (traverseproc)conn_traverse,
    .tp_clear = (inquiry)conn_clear,
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_methods = conn_methods,
    .tp_members = conn_members,
    .tp_getset = conn_getset,
    .tp_init = (initproc)conn_init,
    .tp_new = PyType_GenericNew,
};

/* -- Builtin: wire.BuiltinFunction --------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *name, *fn;
    vectorcallfunc vectorcall;
} Builtin;

static PyObject *
builtin_vectorcall(Builtin *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
}

static PyObject *
builtin_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *name, *fn;
    if (!PyArg_ParseTuple(args, "UO:builtin_function_or_method", &name, &fn)) {
        return NULL;
    }
    Builtin *self = (Builtin *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->name = Py_NewRef(name);
    self->fn = Py_NewRef(fn);
    self->vectorcall = (vectorcallfunc)builtin_vectorcall;
    return (PyObject *)self;
}

static int
builtin_traverse(Builtin *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->fn);
    return 0;
}

static int
builtin_clear(Builtin *self)
{
    Py_CLEAR(self->name);
    Py_CLEAR(self->fn);
    return 0;
}

static void
builtin_dealloc(Builtin *self)
{
    PyObject_GC_UnTrack(self);
    builtin_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
builtin_repr(Builtin *self)
{
    return PyUnicode_FromFormat("<built-in function %U>", self->name);
}

/* __deepcopy__: itself (wire.BuiltinFunction.__deepcopy__ says why) */
static PyObject *
builtin_deepcopy(PyObject *self, PyObject *memo)
{
    return Py_NewRef(self);
}

static PyMethodDef builtin_methods[] = {
    {"__deepcopy__", builtin_deepcopy, METH_O, NULL},
    {NULL},
};

static PyMemberDef builtin_members[] = {
    {"__name__", T_OBJECT, offsetof(Builtin, name), READONLY, NULL},
    {"_fn", T_OBJECT, offsetof(Builtin, fn), READONLY, NULL},
    {NULL},
};

/* The type name a C function's type prints (wire.BuiltinFunction's docstring says why). */
static PyTypeObject BuiltinType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "builtin_function_or_method",
    .tp_basicsize = sizeof(Builtin),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A callable whose repr is uWSGI's <built-in function NAME>.",
    .tp_traverse = (traverseproc)builtin_traverse,
    .tp_clear = (inquiry)builtin_clear,
    .tp_dealloc = (destructor)builtin_dealloc,
    .tp_repr = (reprfunc)builtin_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Builtin, vectorcall),
    .tp_members = builtin_members,
    .tp_methods = builtin_methods,
    .tp_new = builtin_new,
};

/* -- spitter: uwsgi.start_response ---------------------------------------------------- */

/* The running request's connection when it is a ConnectionCore (borrowed), else NULL
 * with no error set (the caller falls back), or NULL with an error. */
static Conn *
current_conn(PyObject *kernel)
{
    PyObject *proc = attr_get(&a_current, kernel), *req, *conn;
    if (proc == NULL) {
        return NULL;
    }
    int found = attr_lookup(&a_request, proc, &req);
    Py_DECREF(proc);
    if (found <= 0) {
        return NULL;
    }
    found = attr_lookup(&a_conn, req, &conn);
    Py_DECREF(req);
    if (found <= 0) {
        return NULL;
    }
    Py_DECREF(conn);  /* the request holds it while it runs */
    return PyObject_TypeCheck(conn, &ConnType) ? (Conn *)conn : NULL;
}

static PyObject *
spitter_call(PyObject *state, PyObject *args, PyObject *kw)
{
    Conn *conn = current_conn(PyTuple_GET_ITEM(state, 0));
    if (conn == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return PyObject_Call(PyTuple_GET_ITEM(state, 1), args, kw);
    }
    Py_INCREF(conn);
    PyObject *r = conn_spit(conn, args, kw);
    Py_DECREF(conn);
    return r;
}

/* the write callable: the running request's connection's uwsgi_write (keywords are
 * ignored, as by the twin) */
static PyObject *
writer_call(PyObject *state, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Conn *conn = current_conn(PyTuple_GET_ITEM(state, 0));
    if (conn == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        return PyObject_Vectorcall(PyTuple_GET_ITEM(state, 1), args, nargs, kwnames);
    }
    Py_INCREF(conn);
    PyObject *r = conn_uwsgi_write(conn, args, nargs);
    Py_DECREF(conn);
    return r;
}

static PyMethodDef current_defs[] = {
    {"uwsgi_spit", (PyCFunction)(void (*)(void))spitter_call, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"uwsgi_write", (PyCFunction)(void (*)(void))writer_call, METH_FASTCALL | METH_KEYWORDS,
     NULL},
};

/* current_defs[index] over (kernel, fallback) */
static PyObject *
new_current(int index, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s: takes (kernel, fallback)",
                     current_defs[index].ml_name);
        return NULL;
    }
    PyObject *state = PyTuple_Pack(2, args[0], args[1]);
    if (state == NULL) {
        return NULL;
    }
    PyObject *fn = PyCFunction_NewEx(&current_defs[index], state, NULL);
    Py_DECREF(state);
    return fn;
}

static PyObject *
new_spitter(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return new_current(0, args, nargs);
}

static PyObject *
new_writer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return new_current(1, args, nargs);
}

/* -- app_caller: workers._call_app ----------------------------------------------------- */

/* helpers: what app_caller's dict gives (see the module comment) */
enum { H_FALLBACK, H_CONNECTION, H_INPUT, H_CONTENT_LENGTH, H_PACKET_VARS, H_ENVIRON_KEYS,
       H_ENVIRON_KEY, H_MANAGE_EXCEPTION, H_RESPOND, H_OUTCOME, H_UNHANDLED,
       H_SEND_FILE_WRAPPER, H_CONTROL, H_EXIT, H_EXCEPTION_RESPONSE, H_WIRE_ENVIRON_KEYS,
       H_WIRE_ENVIRON_KEY, H_REUSED_ENVIRON, H_COUNT };
static const char *helper_names[H_COUNT] = {
    "fallback", "Connection", "Input", "content_length", "packet_vars", "environ_keys",
    "environ_key", "manage_exception", "respond", "outcome", "unhandled",
    "send_file_wrapper", "CONTROL", "exit", "exception_response", "wire_environ_keys",
    "wire_environ_key", "reused_environ"};

typedef struct {
    PyObject_HEAD
    PyObject *h[H_COUNT];
    vectorcallfunc vectorcall;
} Caller;

/* getattr(obj, name): a new reference (NULL: error) */
#define GET(obj, n) attr_get(&a_##n, (obj))

/* inst.opts.memo(key, compute, inst), looking in the options' answers first as
 * Options.memo does when they are fresh: the keys after wsgi.input (wired: in the
 * order of a wire request's environ) */
static PyObject *
environ_keys(Caller *self, PyObject *inst, int wired)
{
    PyObject *key = self->h[wired ? H_WIRE_ENVIRON_KEY : H_ENVIRON_KEY];
    PyObject *opts = GET(inst, opts), *seen = NULL, *items = NULL, *length = NULL;
    PyObject *memo = NULL, *found = NULL;
    if (opts == NULL) {
        return NULL;
    }
    if ((seen = GET(opts, _seen)) != NULL && (items = GET(opts, items)) != NULL
            && (length = GET(seen, length)) != NULL && (memo = GET(seen, memo)) != NULL) {
        PyObject *seen_items = GET(seen, items);
        if (seen_items != NULL) {
            Py_ssize_t n = PyObject_Length(items);
            Py_ssize_t want = PyLong_AsSsize_t(length);
            if (seen_items == items && n >= 0 && n == want && PyDict_Check(memo)) {
                found = Py_XNewRef(PyDict_GetItemWithError(memo, key));
            }
            Py_DECREF(seen_items);
        }
    }
    Py_XDECREF(seen);
    Py_XDECREF(items);
    Py_XDECREF(length);
    Py_XDECREF(memo);
    if (found == NULL && !PyErr_Occurred()) {
        found = PyObject_CallMethod(opts, "memo", "OOO", key,
                                    self->h[wired ? H_WIRE_ENVIRON_KEYS : H_ENVIRON_KEYS],
                                    inst);
    }
    Py_DECREF(opts);
    return found;
}

/* workers._Input(body, cl, conn), made as its __init__ makes it (without its frame):
 * _cl, io.BytesIO's buffer of body[:_cl], _conn. A length past ssize_t goes to the
 * class itself. */
static PyObject *
new_input(Caller *self, PyObject *body, PyObject *cl, PyObject *conn)
{
    PyTypeObject *type = (PyTypeObject *)self->h[H_INPUT];
    Py_ssize_t post_cl = PyLong_AsSsize_t(cl);
    if (post_cl == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear();
        PyObject *args[3] = {body, cl, conn};
        return PyObject_Vectorcall((PyObject *)type, args, 3, NULL);
    }
    PyObject *length = NULL;
    if (post_cl < 0) {  /* _cl = len(body) */
        Py_ssize_t n = PyObject_Length(body);
        if (n < 0 || (length = PyLong_FromSsize_t(n)) == NULL) {
            return NULL;
        }
        cl = length;
        post_cl = n;
    }
    PyObject *input = type->tp_new(type, empty_tuple, NULL), *initial = NULL, *args = NULL;
    if (input == NULL || attr_set(&a__cl, input, cl) < 0
            || (initial = PySequence_GetSlice(body, 0, post_cl)) == NULL
            || (args = PyTuple_Pack(1, initial)) == NULL
            || type->tp_base->tp_init(input, args, NULL) < 0
            || attr_set(&a__conn, input, conn) < 0) {
        Py_CLEAR(input);
    }
    Py_XDECREF(args);
    Py_XDECREF(initial);
    Py_XDECREF(length);
    return input;
}

/* The environ's start for a WSGI request that came over a socket (req.net set, no
 * control plugin): a copy of the vars the node received (net.text_vars()), and in
 * *scheme its wsgi.url_scheme (net.scheme). NULL with no error pending: any other
 * request. */
static PyObject *
wire_vars(PyObject *req, PyObject **scheme)
{
    PyObject *net = GET(req, net), *control = NULL, *text_vars = NULL, *text = NULL;
    PyObject *environ = NULL;
    if (net == NULL || net == Py_None || (control = GET(net, control)) == NULL
            || control != Py_None || (text = GET(net, _text)) == NULL) {
        goto done;
    }
    if (text == Py_None) {  /* not decoded yet (the node decodes them as it submits) */
        Py_CLEAR(text);
        if ((text_vars = GET(net, text_vars)) == NULL
                || (text = PyObject_CallNoArgs(text_vars)) == NULL) {
            goto done;
        }
    }
    if ((*scheme = GET(net, scheme)) != NULL) {
        environ = PyDict_Check(text) ? PyDict_Copy(text)
                                     : PyObject_CallOneArg((PyObject *)&PyDict_Type, text);
        if (environ == NULL) {
            Py_CLEAR(*scheme);
        }
    }
done:
    Py_XDECREF(net);
    Py_XDECREF(control);
    Py_XDECREF(text_vars);
    Py_XDECREF(text);
    return environ;
}

/* build_environ: the packet's vars, wsgi.input, the per-instance keys (workers.py's
 * twin: a wire request's vars and scheme, the body's length from the packet's) */
static PyObject *
build_environ(Caller *self, PyObject *inst, PyObject *req, PyObject *conn)
{
    PyObject *src = NULL;
    Attr *names[2] = {&a_env_vars, &a_vars};
    for (int i = 0; i < 2 && src == NULL; i++) {
        PyObject *v = attr_get(names[i], req);
        if (v == NULL) {
            return NULL;
        }
        int t = PyObject_IsTrue(v);
        if (t < 0) {
            Py_DECREF(v);
            return NULL;
        }
        if (t) {
            src = v;
        }
        else {
            Py_DECREF(v);
        }
    }
    if (src == NULL) {
        PyObject *args[2] = {inst, req};
        if ((src = PyObject_Vectorcall(self->h[H_PACKET_VARS], args, 2, NULL)) == NULL) {
            return NULL;
        }
    }
    if (!PyDict_CheckExact(src)) {
        Py_SETREF(src, PyObject_CallOneArg((PyObject *)&PyDict_Type, src));
        if (src == NULL) {
            return NULL;
        }
    }
    PyObject *scheme = NULL;
    PyObject *environ = wire_vars(req, &scheme);
    if (environ == NULL && !PyErr_Occurred()) {
        environ = PyDict_Copy(src);
    }
    if (environ == NULL) {
        Py_DECREF(src);
        return NULL;
    }
    PyObject *length = PyDict_GetItemWithError(src, str_content_length), *cl;
    int t = length == NULL ? 0 : PyObject_IsTrue(length);
    if (t < 0 || (length == NULL && PyErr_Occurred())) {
        goto fail;
    }
    if (t) {
        if ((cl = PyObject_CallOneArg(self->h[H_CONTENT_LENGTH], length)) == NULL) {
            goto fail;
        }
    }
    else {
        cl = Py_NewRef(zero);
    }
    PyObject *body = GET(req, body);
    if (body == NULL) {
        Py_DECREF(cl);
        goto fail;
    }
    PyObject *input = new_input(self, body, cl, conn);
    Py_DECREF(body);
    Py_DECREF(cl);
    if (input == NULL) {
        goto fail;
    }
    t = PyDict_SetItem(environ, str_wsgi_input, input);
    Py_DECREF(input);
    if (t < 0) {
        goto fail;
    }
    PyObject *keys = environ_keys(self, inst, scheme != NULL);
    if (keys == NULL) {
        goto fail;
    }
    t = PyDict_Update(environ, keys);
    Py_DECREF(keys);
    if (t < 0 || (scheme != NULL
                  && PyDict_SetItemString(environ, "wsgi.url_scheme", scheme) < 0)) {
        goto fail;
    }
    Py_DECREF(src);
    Py_XDECREF(scheme);
    return environ;
fail:
    Py_DECREF(src);
    Py_XDECREF(scheme);
    Py_DECREF(environ);
    return NULL;
}

/* An exception pending now, as the twin's `except` clauses treat it: CONTROL goes on
 * (-1, still pending), SystemExit ends the process (-1, ProcessExit pending); any
 * other is the exception being handled while manage_exception(inst, w) logs and
 * counts it (1: failed; -1 if that raised). */
static int
caught(Caller *self, PyObject *inst, PyObject *w)
{
    if (PyErr_ExceptionMatches(self->h[H_CONTROL])) {
        return -1;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    if (PyErr_GivenExceptionMatches(type, PyExc_SystemExit)) {
        /* `raise ProcessExit.from_system_exit(exc) from None` */
        PyObject *ended = PyObject_CallOneArg(self->h[H_EXIT], value);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (ended == NULL) {
            Py_DECREF(value);
            return -1;
        }
        PyException_SetContext(ended, value);  /* steals value */
        ((PyBaseExceptionObject *)ended)->suppress_context = 1;
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(ended)), ended, NULL);
        return -1;
    }
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_GetExcInfo(&saved_type, &saved_value, &saved_tb);
    PyErr_SetExcInfo(type, value, tb);  /* steals them */
    PyObject *args[2] = {inst, w};
    PyObject *r = PyObject_Vectorcall(self->h[H_MANAGE_EXCEPTION], args, 2, NULL);
    PyErr_SetExcInfo(saved_type, saved_value, saved_tb);
    Py_XDECREF(r);
    return r == NULL ? -1 : 1;
}

/* `except Exception: failed = _manage_exception(inst, w)`: 1 when the pending error is
 * an Exception (handled), -1 when it is not (it stays pending for `caught`) */
static int
caught_exception(Caller *self, PyObject *inst, PyObject *w)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    return caught(self, inst, w);
}

/* _write_result: the response loop; 1 when an exception was logged, 0, or -1 with an
 * error pending that the loop does not handle (BaseException, a failed write) */
static int
write_result(Caller *self, PyObject *inst, PyObject *w, Conn *conn, PyObject *result)
{
    PyObject *args[4] = {inst, w, (PyObject *)conn, result};
    int r;
    if (PyBytes_Check(result)) {
        if ((r = conn_write_body(conn, result)) < 0) {
            return -1;
        }
        if (!r) {
            PyObject *x = PyObject_CallMethod((PyObject *)conn, "write_exception", NULL);
            Py_XDECREF(x);
            return x == NULL ? -1 : 0;
        }
        return 0;
    }
    PyObject *iter = PyObject_GetIter(result);
    if (iter == NULL) {
        return caught_exception(self, inst, w);
    }
    for (;;) {
        PyObject *chunk = PyIter_Next(iter);
        if (chunk == NULL) {
            Py_DECREF(iter);
            return PyErr_Occurred() ? caught_exception(self, inst, w) : 0;
        }
        if (PyBytes_Check(chunk)) {
            r = conn_write_body(conn, chunk);
            if (r <= 0) {
                Py_DECREF(chunk);
                Py_DECREF(iter);
                if (r < 0) {
                    return -1;
                }
                PyObject *x = PyObject_CallMethod((PyObject *)conn, "write_exception", NULL);
                Py_XDECREF(x);
                return x == NULL ? -1 : 0;
            }
        }
        else if (conn->sendfile_obj != Py_None && chunk == conn->sendfile_obj) {
            args[3] = chunk;
            PyObject *x = PyObject_Vectorcall(self->h[H_SEND_FILE_WRAPPER], args, 4, NULL);
            r = x == NULL ? -1 : PyObject_IsTrue(x);
            Py_XDECREF(x);
            if (r <= 0) {
                Py_DECREF(chunk);
                Py_DECREF(iter);
                return r;
            }
        }
        else {
            PyObject *a[2] = {inst, chunk};
            PyObject *x = PyObject_Vectorcall(self->h[H_UNHANDLED], a, 2, NULL);
            Py_XDECREF(x);
            if (x == NULL) {
                Py_DECREF(chunk);
                Py_DECREF(iter);
                return -1;
            }
        }
        Py_DECREF(chunk);
        conn->switches++;
    }
}

/* _respond: the loop, then close() whatever happened; 1 when an exception was logged,
 * 0, or -1 with an error pending for `caught` */
static int
respond(Caller *self, PyObject *inst, PyObject *w, Conn *conn, PyObject *result)
{
    PyObject *policy = PyObject_GetAttr(inst, str_write_policy);
    if (policy == NULL) {
        return -1;
    }
    int default_policy = policy == Py_None;
    Py_DECREF(policy);
    /* wsgi.file_wrapper was called, or failed writes are not uWSGI's default: the twin */
    if (conn->sendfile_obj != Py_None || !default_policy) {
        PyObject *args[4] = {inst, w, (PyObject *)conn, result};
        PyObject *x = PyObject_Vectorcall(self->h[H_RESPOND], args, 4, NULL);
        int failed = x == NULL ? -1 : PyObject_IsTrue(x);
        Py_XDECREF(x);
        return failed;
    }
    int failed = write_result(self, inst, w, conn, result);
    if (failed < 0) {
        return -1;
    }
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result) || PyBytes_CheckExact(result)) {
        return failed;  /* no close() */
    }
    PyObject *close;
    if (attr_lookup(&a_close, result, &close) < 0) {
        return -1;
    }
    if (close != NULL) {
        PyObject *x = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (x == NULL) {
            return caught_exception(self, inst, w);
        }
        Py_DECREF(x);
    }
    return failed;
}

/* _result: what the client got (status, headers, body, failed) */
static PyObject *
result_of(Caller *self, Conn *conn, int failed)
{
    if (conn_finish(conn) < 0) {
        return NULL;
    }
    PyObject *failed_obj = failed ? Py_True : Py_False;
    int wire = conn->altered ? 1 : PyObject_IsTrue(conn->wire);
    if (wire < 0) {
        return NULL;
    }
    PyObject *status = conn->status;
    if (conn->altered || (wire && !conn->headers_sent) || !PyList_CheckExact(conn->body)
            || (status != Py_None && !(PyUnicode_CheckExact(status) && PyUnicode_IS_ASCII(status)
                                       && PyUnicode_GET_LENGTH(status) >= 3))) {
        PyObject *args[2] = {(PyObject *)conn, failed_obj};
        return PyObject_Vectorcall(self->h[H_OUTCOME], args, 2, NULL);
    }
    if (status == Py_None) {
        if (failed) {
            return PyObject_CallNoArgs(self->h[H_EXCEPTION_RESPONSE]);
        }
        return Py_BuildValue("(O[]OO)", Py_None, empty_bytes, Py_False);
    }
    /* int(status.split(None, 1)[0]) for the common "DDD ..." / "DDD" status */
    const char *s = (const char *)PyUnicode_DATA(status);
    Py_ssize_t n = PyUnicode_GET_LENGTH(status);
    if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0'
            && s[2] <= '9' && (n == 3 || s[3] == ' '))) {
        PyObject *args[2] = {(PyObject *)conn, failed_obj};
        return PyObject_Vectorcall(self->h[H_OUTCOME], args, 2, NULL);
    }
    long code = 100 * (s[0] - '0') + 10 * (s[1] - '0') + (s[2] - '0');
    PyObject *body, *parts = conn->body;
    if (PyList_GET_SIZE(parts) == 0) {
        body = Py_NewRef(empty_bytes);
    }
    else if (PyList_GET_SIZE(parts) == 1 && PyBytes_CheckExact(PyList_GET_ITEM(parts, 0))) {
        body = Py_NewRef(PyList_GET_ITEM(parts, 0));
    }
    else if ((body = PyObject_CallMethodOneArg(empty_bytes, str_join, parts)) == NULL) {
        return NULL;
    }
    return Py_BuildValue("(lONO)", code, conn->headers, body, failed_obj);
}

/* workers.reused_environ (--wsgi-env-behaviour cheat): the core's dict for the app,
 * filled with `environ`'s items (a new reference), or NULL with an error */
static PyObject *
reused_environ(Caller *self, PyObject *w, PyObject *app_id, PyObject *environ)
{
    PyObject *kept = PyObject_GetAttr(w, str_environs);
    if (kept == NULL) {
        return NULL;
    }
    if (!PyDict_CheckExact(kept)) {  /* none yet (or not a plain dict): the twin */
        Py_DECREF(kept);
        PyObject *args[3] = {w, app_id, environ};
        return PyObject_Vectorcall(self->h[H_REUSED_ENVIRON], args, 3, NULL);
    }
    PyObject *found = PyDict_GetItemWithError(kept, app_id);
    if (found == NULL) {
        int r = PyErr_Occurred() ? -1 : PyDict_SetItem(kept, app_id, environ);
        Py_DECREF(kept);
        return r < 0 ? NULL : Py_NewRef(environ);
    }
    Py_INCREF(found);
    Py_DECREF(kept);
    if (PyDict_Update(found, environ) < 0) {
        Py_DECREF(found);
        return NULL;
    }
    return found;
}

/* the twin's `finally`: the reused environ cleared (cheat), or uwsgi.env the request's
 * environ no more (holy) */
static int drop_env(PyObject *module, PyObject *environ);

static int
finish_env(PyObject *module, PyObject *environ, int holy, int cores_lt2)
{
    if (!holy) {
        PyDict_Clear(environ);
        return 0;
    }
    return cores_lt2 ? drop_env(module, environ) : 0;
}

static int
drop_env(PyObject *module, PyObject *environ)
{
    PyObject *env = PyObject_GetItem(module, str_env);
    if (env == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    int r = env == environ ? PyObject_DelItem(module, str_env) : 0;
    Py_DECREF(env);
    return r;
}

static PyObject *
caller_vectorcall(Caller *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || kwnames != NULL) {
        return PyObject_Vectorcall(self->h[H_FALLBACK], args, nargsf, kwnames);
    }
    PyObject *inst = args[0], *w = args[1], *req = args[2];
    PyObject *app = NULL, *misc = NULL, *apps = NULL, *app_id = NULL, *subsystems = NULL;
    PyObject *result = NULL, *environ = NULL, *module = NULL, *spit = NULL, *write = NULL;
    int holy = 1, finish = 0;
    Conn *conn = NULL;
    int cores_lt2 = 0;

    /* the app: (w.apps if inst.lazy_apps else inst.app.apps).get(req.app_id) */
    PyObject *lazy = GET(inst, lazy_apps);
    if (lazy == NULL) {
        return NULL;
    }
    int is_lazy = PyObject_IsTrue(lazy);
    Py_DECREF(lazy);
    if (is_lazy < 0) {
        return NULL;
    }
    if (is_lazy) {
        apps = GET(w, apps);
    }
    else {
        PyObject *loader = GET(inst, app);
        if (loader == NULL) {
            return NULL;
        }
        apps = GET(loader, apps);
        Py_DECREF(loader);
    }
    if (apps == NULL || (app_id = GET(req, app_id)) == NULL) {
        goto done;
    }
    if ((subsystems = GET(inst, subsystems)) == NULL) {
        goto done;
    }
    if (PyDict_Check(apps) && PyDict_Check(subsystems)) {
        app = Py_XNewRef(PyDict_GetItemWithError(apps, app_id));
        misc = Py_XNewRef(PyDict_GetItemWithError(subsystems, str_misc));
        if (PyErr_Occurred()) {
            goto done;
        }
    }
    if (app == NULL || misc == NULL || app == Py_None || misc == Py_None) {
        /* no app ("no python application found"), no misc, dict subclasses: the twin */
        Py_CLEAR(apps);
        Py_CLEAR(app_id);
        Py_CLEAR(subsystems);
        Py_CLEAR(app);
        Py_CLEAR(misc);
        return PyObject_Vectorcall(self->h[H_FALLBACK], args, nargsf, kwnames);
    }
    PyObject *loader = GET(inst, app);
    if (loader == NULL) {
        goto done;
    }
    PyObject *mine = PyObject_CallMethodOneArg(loader, str_resolve, app);
    Py_DECREF(loader);
    if (mine == NULL) {
        goto done;
    }
    Py_SETREF(app, mine);
    if ((spit = GET(misc, spit)) == NULL || (write = GET(misc, writeout)) == NULL) {
        goto done;
    }
    PyTypeObject *conn_type = (PyTypeObject *)self->h[H_CONNECTION];
    if ((conn = (Conn *)conn_type->tp_alloc(conn_type, 0)) == NULL
            || conn_fill(conn, inst, req, w, write) < 0
            || attr_set(&a_conn, req, (PyObject *)conn) < 0) {
        goto done;
    }
    if ((conn->app_id = PyLong_AsSsize_t(app_id)) == -1 && PyErr_Occurred()) {
        goto done;
    }
    PyObject *switches = GET(req, switches);
    if (switches == NULL) {
        goto done;
    }
    conn->switches = PyLong_AsSsize_t(switches);
    Py_DECREF(switches);
    if (conn->switches == -1 && PyErr_Occurred()) {
        goto done;
    }
    if ((environ = build_environ(self, inst, req, (PyObject *)conn)) == NULL) {
        goto done;
    }
    PyObject *holy_obj = GET(inst, wsgi_env_holy);
    if (holy_obj == NULL || (holy = PyObject_IsTrue(holy_obj)) < 0) {
        Py_XDECREF(holy_obj);
        holy = 1;
        goto done;
    }
    Py_DECREF(holy_obj);
    if (!holy) {  /* --wsgi-env-behaviour cheat: the core's one dict, refilled */
        PyObject *kept = reused_environ(self, w, app_id, environ);
        if (kept == NULL) {
            holy = 1;
            goto done;
        }
        Py_SETREF(environ, kept);
        finish = 1;
    }
    /* uwsgi.env goes straight into the module's dict (see the twin) */
    PyObject *facade = GET(inst, facade), *cores;
    if (facade == NULL) {
        goto done;
    }
    module = PyModule_Check(facade) ? Py_NewRef(PyModule_GetDict(facade))
                                    : PyObject_GetAttrString(facade, "__dict__");
    Py_DECREF(facade);
    if (module == NULL || (cores = GET(inst, cores)) == NULL) {
        goto done;
    }
    cores_lt2 = PyObject_RichCompareBool(cores, two, Py_LT);
    Py_DECREF(cores);
    if (cores_lt2 < 0 || (cores_lt2 && PyObject_SetItem(module, str_env, environ) < 0)) {
        cores_lt2 = 0;
        goto done;
    }
    finish = 1;
    int failed;
    PyObject *call_args[2] = {environ, spit};
    PyObject *returned = PyObject_Vectorcall(app, call_args, 2, NULL);
    if (returned == NULL) {
        failed = caught(self, inst, w);
    }
    else {
        failed = respond(self, inst, w, conn, returned);
        Py_DECREF(returned);
        if (failed < 0) {
            failed = caught(self, inst, w);
        }
    }
    if (failed < 0) {
        goto done;
    }
    finish = 0;
    if (finish_env(module, environ, holy, cores_lt2) < 0) {
        goto done;
    }
    result = result_of(self, conn, failed);
done:
    if (finish) {  /* finally: an error is pending, kept past the clean-up */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (finish_env(module, environ, holy, cores_lt2) < 0) {
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
        }
        else {
            PyErr_Restore(type, value, tb);
        }
    }
    Py_XDECREF(apps);
    Py_XDECREF(app_id);
    Py_XDECREF(subsystems);
    Py_XDECREF(app);
    Py_XDECREF(misc);
    Py_XDECREF(spit);
    Py_XDECREF(write);
    Py_XDECREF(conn);
    Py_XDECREF(environ);
    Py_XDECREF(module);
    return result;
}

static int
caller_traverse(Caller *self, visitproc visit, void *arg)
{
    for (int i = 0; i < H_COUNT; i++) {
        Py_VISIT(self->h[i]);
    }
    return 0;
}

static int
caller_clear(Caller *self)
{
    for (int i = 0; i < H_COUNT; i++) {
        Py_CLEAR(self->h[i]);
    }
    return 0;
}

static void
caller_dealloc(Caller *self)
{
    PyObject_GC_UnTrack(self);
    caller_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject CallerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi.server._cwsgi.AppCaller",
    .tp_basicsize = sizeof(Caller),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "workers._call_app's common case (see _cwsgi.c).",
    .tp_traverse = (traverseproc)caller_traverse,
    .tp_clear = (inquiry)caller_clear,
    .tp_dealloc = (destructor)caller_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Caller, vectorcall),
};

static PyObject *
new_app_caller(PyObject *module, PyObject *helpers)
{
    if (!PyDict_Check(helpers)) {
        PyErr_SetString(PyExc_TypeError, "app_caller() takes a dict of helpers");
        return NULL;
    }
    Caller *self = PyObject_GC_New(Caller, &CallerType);
    if (self == NULL) {
        return NULL;
    }
    for (int i = 0; i < H_COUNT; i++) {
        self->h[i] = NULL;
    }
    self->vectorcall = (vectorcallfunc)caller_vectorcall;
    for (int i = 0; i < H_COUNT; i++) {
        PyObject *v = PyDict_GetItemString(helpers, helper_names[i]);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "app_caller(): no helper %s", helper_names[i]);
            Py_DECREF(self);
            return NULL;
        }
        self->h[i] = Py_NewRef(v);
    }
    if (!PyType_Check(self->h[H_CONNECTION])
            || !PyType_IsSubtype((PyTypeObject *)self->h[H_CONNECTION], &ConnType)) {
        PyErr_SetString(PyExc_TypeError, "app_caller(): Connection must subclass ConnectionCore");
        Py_DECREF(self);
        return NULL;
    }
    PyTypeObject *input = (PyTypeObject *)self->h[H_INPUT];
    if (!PyType_Check(input) || input->tp_base == NULL || input->tp_base->tp_init == NULL) {
        PyErr_SetString(PyExc_TypeError, "app_caller(): Input must subclass io.BytesIO");
        Py_DECREF(self);
        return NULL;
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* configure(header_pair, phrases): wire's helpers for the connection */
static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure(header_pair, phrases: dict)");
        return NULL;
    }
    Py_XSETREF(header_pair, Py_NewRef(args[0]));
    Py_XSETREF(phrases, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(header_pair, phrases): wire's helpers."},
    {"spitter", (PyCFunction)(void (*)(void))new_spitter, METH_FASTCALL,
     "spitter(kernel, fallback): uwsgi.start_response's body (see the module comment)."},
    {"writer", (PyCFunction)(void (*)(void))new_writer, METH_FASTCALL,
     "writer(kernel, fallback): the write callable's body (see the module comment)."},
    {"app_caller", new_app_caller, METH_O,
     "app_caller(helpers): workers._call_app's common case (see the module comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_cwsgi",
    "C accelerator for the WSGI call of a simulated request (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__cwsgi(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_int, "int") INTERN(str_append, "append") INTERN(str_env, "env")
    INTERN(str_content_length, "CONTENT_LENGTH") INTERN(str_wsgi_input, "wsgi.input")
    INTERN(str_write_policy, "write_policy") INTERN(str_writer_hooks, "writer_hooks")
    INTERN(str_environs, "environs")
    INTERN(str_resolve, "resolve") INTERN(str_misc, "misc") INTERN(str_join, "join")
    INTERN(str_crlf, "\r\n") INTERN(str_colon, ": ") INTERN(str_end, "\r\n\r\n")
    INTERN(str_headers_limit, "response-headers-limit") INTERN(empty_str, "")
    INTERN(unknown, "Unknown")
#undef INTERN
    ATTRS(ATTR_INTERN)
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL
            || (empty_tuple = PyTuple_New(0)) == NULL
            || (zero = PyLong_FromLong(0)) == NULL || (two = PyLong_FromLong(2)) == NULL
            || PyType_Ready(&ConnType) < 0 || PyType_Ready(&BuiltinType) < 0
            || PyType_Ready(&CallerType) < 0) {
        return NULL;
    }
    static const char *const names[] = {"ConnectionCore", "Builtin"};
    static PyTypeObject *const types[] = {&ConnType, &BuiltinType};
    return module_with_types(&moduledef, names, types, 2);
}
