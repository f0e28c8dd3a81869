/*
 * Optional C accelerator for simuwsgi serve's accept loop (simuwsgi/net/_server.py).
 *
 * A Taker takes one connection off a listening IPv4 socket: accept4 (non-blocking,
 * close-on-exec), one recv, and then one of two Python callables:
 *
 *   plain(sock, addr, vars, modifier1, modifier2)
 *       a plain WSGI request complete at accept time: modifier1 0 or 30, a non-empty
 *       vars block within buffer_size that the pairs tile exactly (none with an empty
 *       key, at most max_vars of them), no body (no CONTENT_LENGTH var, or its last
 *       value "" or "0") and no byte after the packet; vars is the tuple of
 *       (bytes, bytes) pairs the Python codec decodes;
 *       On an --http-socket listener (http=(hostname, server_port)), plain gets a
 *       simple HTTP head instead, complete and alone in the first read, whose vars
 *       _http_request.parse_http_request would build without a warning or a refusal:
 *       "METHOD SP URI SP PROTOCOL CRLF", a URI starting with "/" without "%", "#"
 *       or "/." (its PATH_INFO is itself), header lines "Name: value" (no
 *       continuation, no name twice, no Content-Length), every var fitting
 *       buffer_size, at most max_vars of them; modifier1 and modifier2 are 0;
 *   other(sock, addr, data)
 *       anything else, with the bytes read (None: none yet, EAGAIN);
 *   ping(fd, addr)  (keyword ping=, optional)
 *       a ping alone in the first read on a --socket listener (the four bytes
 *       100, 0, 0, modifier2): returns the reply's bytes, which take() sends before
 *       closing the connection (no socket object is made: a ping is answered as
 *       uWSGI answers it, in a few system calls); None: not answered, the connection
 *       goes on to other; anything else is take()'s result, the descriptor then
 *       belonging to the caller.
 *
 * Both get the connection as a socket.socket-level object (sock_type(family, type,
 * proto, fd)) and the peer's address as accept() gives it ((host, port)); take()
 * returns what the callable returned, False when no connection was waiting, None
 * when the recv failed (the connection is closed: the Python loop does the same), and
 * accept4's other errors as the OSError socket.accept raises, returned, not raised
 * (an OSError out of a callable is not accept's). With plain=None every connection
 * goes to other.
 *
 * text_vars(pairs) -> dict: the (bytes, bytes) pairs decoded as latin-1, the last
 * duplicate winning (_wire.WireRequest.text_vars's dict comprehension).
 *
 * The Python twin (_server._Taker) does the same with socket.accept and always calls
 * other: the sans-IO codec then reads the packet, which is what this C path must
 * match byte for byte (tests/net/test_cserve.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "../_core/_cutil.h"

/* As _server._READ: what one recv asks for. */
#define READ_SIZE 65536

typedef struct {
    PyObject_HEAD
    int lfd;
    int buffer_size;
    Py_ssize_t max_vars;
    PyObject *sock_args[3]; /* family, type, proto: the accepted sockets' */
    PyObject *sock_type;
    PyObject *plain;
    PyObject *other;
    PyObject *hostname; /* --http-socket: SERVER_NAME and SERVER_PORT (else NULL) */
    PyObject *server_port;
    PyObject *ping; /* answers a ping alone in the first read (or NULL) */
    unsigned char buf[READ_SIZE];
} Taker;

static void
taker_dealloc(Taker *self)
{
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(self->sock_args[i]);
    }
    Py_XDECREF(self->sock_type);
    Py_XDECREF(self->plain);
    Py_XDECREF(self->other);
    Py_XDECREF(self->hostname);
    Py_XDECREF(self->server_port);
    Py_XDECREF(self->ping);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
taker_init(Taker *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"lfd", "family", "type", "proto", "sock_type", "buffer_size",
                            "max_vars", "plain", "other", "http", "ping", NULL};
    PyObject *family, *type, *proto, *sock_type, *plain, *other, *hostname = NULL,
             *server_port = NULL, *ping = Py_None;
    int lfd, buffer_size;
    Py_ssize_t max_vars;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOOOOinOO|(SS)$O", names, &lfd, &family,
                                     &type, &proto, &sock_type, &buffer_size, &max_vars,
                                     &plain, &other, &hostname, &server_port, &ping)) {
        return -1;
    }
    Py_XSETREF(self->ping, ping == Py_None ? NULL : Py_NewRef(ping));
    Py_XSETREF(self->hostname, Py_XNewRef(hostname));
    Py_XSETREF(self->server_port, Py_XNewRef(server_port));
    self->lfd = lfd;
    self->buffer_size = buffer_size;
    self->max_vars = max_vars;
    Py_XSETREF(self->sock_args[0], Py_NewRef(family));
    Py_XSETREF(self->sock_args[1], Py_NewRef(type));
    Py_XSETREF(self->sock_args[2], Py_NewRef(proto));
    Py_XSETREF(self->sock_type, Py_NewRef(sock_type));
    Py_XSETREF(self->plain, plain == Py_None ? NULL : Py_NewRef(plain));
    Py_XSETREF(self->other, Py_NewRef(other));
    return 0;
}

/* The pairs of a plain request's vars block (see the module doc), or NULL without an
 * error set when it is not one. */
static PyObject *
plain_vars(const unsigned char *data, Py_ssize_t end, Py_ssize_t max_vars)
{
    Py_ssize_t pos = 0, count = 0;
    const unsigned char *cl = NULL; /* the last CONTENT_LENGTH value */
    Py_ssize_t cl_len = 0;
    while (pos < end) {
        if (end - pos < 2) {
            return NULL;
        }
        Py_ssize_t klen = data[pos] | (data[pos + 1] << 8);
        Py_ssize_t ks = pos + 2, ke = ks + klen;
        if (klen == 0 || ke + 2 > end) {
            return NULL;
        }
        Py_ssize_t vs = ke + 2;
        pos = vs + (data[ke] | (data[ke + 1] << 8));
        if (pos > end) {
            return NULL;
        }
        if (klen == 14 && memcmp(data + ks, "CONTENT_LENGTH", 14) == 0) {
            cl = data + vs;
            cl_len = pos - vs;
        }
        count++;
    }
    if (count > max_vars || (cl != NULL && !(cl_len == 0 || (cl_len == 1 && cl[0] == '0')))) {
        return NULL;
    }
    PyObject *out = PyTuple_New(count);
    if (out == NULL) {
        return NULL;
    }
    pos = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t klen = data[pos] | (data[pos + 1] << 8);
        Py_ssize_t ks = pos + 2, ke = ks + klen;
        Py_ssize_t vs = ke + 2, vlen = data[ke] | (data[ke + 1] << 8);
        pos = vs + vlen;
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + ks, klen);
        PyObject *value = key ? PyBytes_FromStringAndSize((const char *)data + vs, vlen) : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, key, value) : NULL;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, pair);
    }
    return out;
}

/* The HTTP head's vars being built: proto_base_add_uwsgi_var's size rule. */
typedef struct {
    PyObject *pairs[128];
    Py_ssize_t count, size, max_vars, buffer_size;
} Vars;

/* Add a var (the key made of prefix + key); 0 when it does not fit (or too many),
 * -1 on an error. key_upper: the header name's http_header_to_cgi transform. */
static int
add_var(Vars *v, const char *prefix, const unsigned char *key, Py_ssize_t klen,
        int key_upper, const unsigned char *value, Py_ssize_t vlen)
{
    Py_ssize_t plen = (Py_ssize_t)strlen(prefix);
    if (v->count >= v->max_vars || v->count >= 128
            || v->size + plen + klen + vlen + 4 >= v->buffer_size) {
        return 0;
    }
    PyObject *k = PyBytes_FromStringAndSize(NULL, plen + klen);
    if (k == NULL) {
        return -1;
    }
    char *kb = PyBytes_AS_STRING(k);
    memcpy(kb, prefix, plen);
    for (Py_ssize_t i = 0; i < klen; i++) {
        unsigned char c = key[i];
        if (key_upper) {
            c = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c;
        }
        kb[plen + i] = (char)c;
    }
    PyObject *val = PyBytes_FromStringAndSize((const char *)value, vlen);
    PyObject *pair = val ? PyTuple_Pack(2, k, val) : NULL;
    Py_DECREF(k);
    Py_XDECREF(val);
    if (pair == NULL) {
        return -1;
    }
    v->pairs[v->count++] = pair;
    v->size += plen + klen + vlen + 4;
    return 1;
}

static int
add_obj(Vars *v, const char *key, PyObject *value)
{
    return add_var(v, "", (const unsigned char *)key, (Py_ssize_t)strlen(key), 0,
                   (const unsigned char *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
}

static const unsigned char *
find(const unsigned char *from, const unsigned char *end, unsigned char c)
{
    return memchr(from, c, end - from);
}

/* The vars of a simple HTTP head (see the module doc) that fills data exactly, or NULL
 * without an error set when it is not one. */
static PyObject *
simple_http_vars(Taker *self, const unsigned char *data, Py_ssize_t got, const char *remote)
{
    const unsigned char *end = data + got, *line_end;
    if (got < 4 || got >= self->buffer_size || memcmp(end - 4, "\r\n\r\n", 4) != 0) {
        return NULL;
    }
    const unsigned char *head_end = data;  /* the first CRLFCRLF must be the last */
    while ((head_end = find(head_end, end, '\r')) != NULL && head_end + 4 <= end
           && memcmp(head_end, "\r\n\r\n", 4) != 0) {
        head_end++;
    }
    if (head_end != end - 4 || (line_end = find(data, end, '\r')) == NULL || line_end[1] != '\n') {
        return NULL;
    }
    const unsigned char *sp1 = find(data, line_end, ' ');
    const unsigned char *uri = sp1 ? sp1 + 1 : NULL;
    const unsigned char *sp2 = uri ? find(uri, line_end, ' ') : NULL;
    if (sp2 == NULL || uri == sp2 || uri[0] != '/') {
        return NULL;
    }
    const unsigned char *query = find(uri, sp2, '?'), *path_end = query ? query : sp2;
    for (const unsigned char *c = uri; c < sp2; c++) {
        if (*c == '%' || *c == '#' || (c < path_end && *c == '/' && c + 1 < path_end
                                       && c[1] == '.')) {
            return NULL;
        }
    }
    if (got + (path_end - uri) >= self->buffer_size) { /* _path_info's room check */
        return NULL;
    }
    Vars v = {.count = 0, .size = 0, .max_vars = self->max_vars,
              .buffer_size = self->buffer_size};
    PyObject *out = NULL;
    int ok = add_var(&v, "", (const unsigned char *)"REQUEST_METHOD", 14, 0, data, sp1 - data);
    if (query != NULL) {
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"PATH_INFO", 9, 0, uri,
                              path_end - uri) : ok;
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"REQUEST_URI", 11, 0, uri,
                              sp2 - uri) : ok;
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"QUERY_STRING", 12, 0, query + 1,
                              sp2 - query - 1) : ok;
    }
    else {
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"REQUEST_URI", 11, 0, uri,
                              sp2 - uri) : ok;
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"PATH_INFO", 9, 0, uri,
                              sp2 - uri) : ok;
        ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"QUERY_STRING", 12, 0, uri, 0) : ok;
    }
    ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"SERVER_PROTOCOL", 15, 0, sp2 + 1,
                          line_end - sp2 - 1) : ok;
    ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"SCRIPT_NAME", 11, 0, uri, 0) : ok;
    ok = ok > 0 ? add_obj(&v, "SERVER_NAME", self->hostname) : ok;
    ok = ok > 0 ? add_obj(&v, "SERVER_PORT", self->server_port) : ok;
    ok = ok > 0 ? add_var(&v, "", (const unsigned char *)"REMOTE_ADDR", 11, 0,
                          (const unsigned char *)remote, (Py_ssize_t)strlen(remote)) : ok;
    Py_ssize_t first_header = v.count;
    for (const unsigned char *line = line_end + 2; ok > 0 && line < end - 2; line = line_end + 2) {
        line_end = find(line, end, '\r');  /* there is one: the head ends with CRLFCRLF */
        const unsigned char *colon = find(line, line_end, ':');
        if (line_end[1] != '\n' || line[0] == ' ' || line[0] == '\t' || colon == NULL
                || colon == line) {
            ok = 0;  /* a continuation, a lone CR, no name: the Python parser's */
            break;
        }
        const unsigned char *value = colon + 1;
        while (value < line_end && *value == ' ') {
            value++;
        }
        Py_ssize_t klen = colon - line;
        int plain_key = klen == 12 || klen == 14;  /* CONTENT_TYPE, CONTENT_LENGTH */
        if (plain_key) {
            char upper[14];
            for (Py_ssize_t i = 0; i < klen; i++) {
                unsigned char c = line[i];
                upper[i] = (char)(c == '-' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c);
            }
            if (klen == 14 && memcmp(upper, "CONTENT_LENGTH", 14) == 0) {
                ok = 0;  /* a body: the Python path reads it */
                break;
            }
            plain_key = klen == 12 && memcmp(upper, "CONTENT_TYPE", 12) == 0;
        }
        ok = add_var(&v, plain_key ? "" : "HTTP_", line, klen, 1, value, line_end - value);
        for (Py_ssize_t i = first_header; ok > 0 && i < v.count - 1; i++) {
            if (PyObject_RichCompareBool(PyTuple_GET_ITEM(v.pairs[i], 0),
                                         PyTuple_GET_ITEM(v.pairs[v.count - 1], 0), Py_EQ)) {
                ok = 0;  /* a name twice: merged by the Python parser */
            }
        }
    }
    if (ok > 0 && (out = PyTuple_New(v.count)) != NULL) {
        for (Py_ssize_t i = 0; i < v.count; i++) {
            PyTuple_SET_ITEM(out, i, v.pairs[i]);
        }
        return out;
    }
    for (Py_ssize_t i = 0; i < v.count; i++) {
        Py_DECREF(v.pairs[i]);
    }
    return NULL;
}

/* Write a small reply on a fresh connection and close it: what the socket does not
 * take now is dropped, and a failed write is not reported (uWSGI counts a write
 * error and goes on; a reply of a few bytes fits a new socket's buffer). */
static void
send_and_close(int fd, const char *data, Py_ssize_t len)
{
    while (len > 0) {
        Py_ssize_t sent = send(fd, data, (size_t)len, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent <= 0) {
            break;
        }
        data += sent;
        len -= sent;
    }
    close(fd);
}

static PyObject *
taker_take(Taker *self, PyObject *Py_UNUSED(ignored))
{
    struct sockaddr_in sa;
    socklen_t salen;
    int fd;
    for (;;) {
        salen = sizeof(sa);
        fd = accept4(self->lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            Py_RETURN_FALSE;
        }
        if (errno != EINTR) { /* EMFILE...: the loop logs it */
            return PyObject_CallFunction(PyExc_OSError, "is", errno, strerror(errno));
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
    Py_ssize_t got;
    do {
        got = recv(fd, self->buf, READ_SIZE, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        close(fd); /* a reset before the first byte: closed without a word */
        Py_RETURN_NONE;
    }
    char host[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
    PyObject *addr = Py_BuildValue("(si)", host, (int)ntohs(sa.sin_port));
    if (addr == NULL) {
        close(fd);
        return NULL;
    }
    PyObject *fdo = PyLong_FromLong(fd);
    const unsigned char *b = self->buf;
    if (fdo != NULL && self->ping != NULL && self->hostname == NULL && got == 4
            && b[0] == 100 && b[1] == 0 && b[2] == 0) {
        PyObject *args[2] = {fdo, addr};
        PyObject *reply = PyObject_Vectorcall(self->ping, args, 2, NULL);
        if (reply == NULL || reply != Py_None) {
            Py_DECREF(fdo);
            Py_DECREF(addr);
            if (reply == NULL) {
                close(fd);
                return NULL;
            }
            if (!PyBytes_Check(reply)) {
                return reply;  /* a task: the descriptor is the caller's now */
            }
            send_and_close(fd, PyBytes_AS_STRING(reply), PyBytes_GET_SIZE(reply));
            Py_DECREF(reply);
            Py_RETURN_NONE;
        }
        Py_DECREF(reply);
    }
    PyObject *sock = NULL;
    if (fdo != NULL) {
        PyObject *args[4] = {self->sock_args[0], self->sock_args[1], self->sock_args[2], fdo};
        sock = PyObject_Vectorcall(self->sock_type, args, 4, NULL);
        Py_DECREF(fdo);
    }
    if (sock == NULL) {
        Py_DECREF(addr);
        close(fd);
        return NULL;
    }
    PyObject *result;
    Py_ssize_t size = got >= 4 ? (b[1] | (b[2] << 8)) : 0;
    PyObject *vars = NULL;
    if (self->plain != NULL && self->hostname != NULL) {
        vars = simple_http_vars(self, b, got, host);
    }
    else if (self->plain != NULL && got >= 4 && (b[0] == 0 || b[0] == 30) && size > 0
             && size <= self->buffer_size && got == 4 + size) {
        vars = plain_vars(b + 4, size, self->max_vars);
    }
    if (vars == NULL && PyErr_Occurred()) {
        Py_DECREF(addr);
        Py_DECREF(sock);
        return NULL;
    }
    if (vars != NULL) {
        int http = self->hostname != NULL;
        PyObject *m1 = PyLong_FromLong(http ? 0 : b[0]);
        PyObject *m2 = m1 ? PyLong_FromLong(http ? 0 : b[3]) : NULL;
        PyObject *args[5] = {sock, addr, vars, m1, m2};
        result = m2 ? PyObject_Vectorcall(self->plain, args, 5, NULL) : NULL;
        Py_XDECREF(m1);
        Py_XDECREF(m2);
        Py_DECREF(vars);
    }
    else {
        PyObject *data = got < 0 ? Py_NewRef(Py_None)
                                 : PyBytes_FromStringAndSize((const char *)b, got);
        PyObject *args[3] = {sock, addr, data};
        result = data ? PyObject_Vectorcall(self->other, args, 3, NULL) : NULL;
        Py_XDECREF(data);
    }
    Py_DECREF(addr);
    Py_DECREF(sock);
    return result;
}

static PyObject *
text_vars(PyObject *Py_UNUSED(mod), PyObject *pairs)
{
    PyObject *seq = PySequence_Fast(pairs, "text_vars() takes a sequence of pairs");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *out = PyDict_New();
    Py_ssize_t n = out ? PySequence_Fast_GET_SIZE(seq) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i), *k = NULL, *v = NULL;
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0))
                || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "text_vars() takes (bytes, bytes) pairs");
        }
        else {
            PyObject *kb = PyTuple_GET_ITEM(pair, 0), *vb = PyTuple_GET_ITEM(pair, 1);
            k = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb), NULL);
            v = k ? PyUnicode_DecodeLatin1(PyBytes_AS_STRING(vb), PyBytes_GET_SIZE(vb), NULL)
                  : NULL;
        }
        int failed = v == NULL || PyDict_SetItem(out, k, v) < 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (failed) {
            Py_CLEAR(out);
            break;
        }
    }
    Py_DECREF(seq);
    return out;
}

static PyMethodDef module_methods[] = {
    {"text_vars", text_vars, METH_O, "The pairs decoded as latin-1 (see the module doc)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef taker_methods[] = {
    {"take", (PyCFunction)taker_take, METH_NOARGS,
     "Take one connection (see the module doc): False when none is waiting."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simuwsgi.net._cserve.Taker",
    .tp_basicsize = sizeof(Taker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Taker(lfd, family, type, proto, sock_type, buffer_size, max_vars, plain, "
              "other): the accept loop's one connection (see the module doc)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)taker_init,
    .tp_dealloc = (destructor)taker_dealloc,
    .tp_methods = taker_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cserve",
    "C accept, read and plain-request parse for simuwsgi serve (see _cserve.c).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__cserve(void)
{
    if (PyType_Ready(&TakerType) < 0) {
        return NULL;
    }
    static const char *const names[] = {"Taker"};
    static PyTypeObject *const types[] = {&TakerType};
    return module_with_types(&module, names, types, 1);
}
