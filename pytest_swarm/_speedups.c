/* Two hot paths in C, each with a pure-Python twin that is used where this is not built:
 * the measure block (pytest_swarm.timing) and the fast client's parser callbacks
 * (pytest_swarm.clients.wire, further down).
 *
 * The measure block: pytest_swarm.timing's Measurement with the same behaviour.
 *
 * Why C: a pure-Python ``with measure(name):`` costs CPython's price for a with-block on a
 * fresh object (allocation and three calls into Python code: __init__, __enter__, __exit__),
 * about 1.5x the recording lines of http's request path (benchmarks/recording.py). Here the
 * object is made by one vectorcall and the three steps are C functions; what remains is the
 * Recorder.record call that every client makes, so a block costs what a request's recording
 * does.
 *
 * Only the common path is here: a block that ends without an exception and without a verdict
 * calls recorder.record(name, elapsed, size). Everything else (a verdict, an exception, a bad
 * name or size, the decorator) calls back into the Python functions that timing.py binds with
 * bind(), so the rules are written once, in Python. timing.py falls back to its pure-Python
 * class when this module is not built; tests/unit/test_timing.py runs every behaviour test
 * against both.
 *
 * The clock is CLOCK_MONOTONIC, which is what time.perf_counter() reads on Linux; elapsed is
 * the difference of two nanosecond readings, in seconds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <errno.h>
#include <sys/socket.h>

/* Bound once by timing.py (one interpreter per process: a load generator runs no
 * subinterpreters). */
static PyObject *timing_globals; /* timing's module dict: _active is read from it per block */
static PyObject *settle;         /* timing._settle(recorder, name, elapsed, size, verdict, exc) */
static PyObject *checked_name;   /* timing._checked_name(name) -> str, or raises */
static PyObject *checked_size;   /* timing._checked_size(name, size) -> int, or raises */
static PyObject *decorate;       /* timing._decorate(name, func) -> the timed function */
static long long max_size;       /* timing.MAX_SIZE */

static PyObject *str_active; /* "_active" */
static PyObject *str_record; /* "record" */
static PyObject *zero;       /* 0, the size of a block that was given none */

typedef struct {
    PyObject_HEAD
    PyObject *name;    /* an exact, non-empty str */
    PyObject *size;    /* an exact int in [0, max_size] */
    PyObject *verdict; /* NULL: none; Py_True: success; a str or an exception: failure */
    long long start;   /* ns; 0 until entered (the monotonic clock is never 0 once running) */
    double elapsed;    /* seconds, set on exit */
} Block;

static PyTypeObject BlockType;

static inline long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
bound(void)
{
    if (timing_globals == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pytest_swarm._speedups is used before pytest_swarm.timing bound it");
        return 0;
    }
    return 1;
}

static PyObject *
block_make(PyTypeObject *type, PyObject *name)
{
    if (!bound()) {
        return NULL;
    }
    if (PyUnicode_CheckExact(name) && PyUnicode_GET_LENGTH(name) > 0) {
        Py_INCREF(name);
    }
    else {
        /* A str subclass becomes a plain str; anything else is a clear error. */
        name = PyObject_CallOneArg(checked_name, name);
        if (name == NULL) {
            return NULL;
        }
    }
    Block *self = PyObject_GC_New(Block, type);
    if (self == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    self->name = name;
    Py_INCREF(zero);
    self->size = zero;
    self->verdict = NULL;
    self->start = 0;
    self->elapsed = 0.0;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
block_name_argument(Py_ssize_t nargs, PyObject *const *args, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs == 1 && nkw == 0) {
        return args[0];
    }
    if (nargs == 0 && nkw == 1
        && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "name") == 0) {
        return args[0];
    }
    PyErr_SetString(PyExc_TypeError, "measure() takes one argument: the block's name");
    return NULL;
}

/* measure(name): the type is called through this, without an argument tuple. */
static PyObject *
block_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *name = block_name_argument(PyVectorcall_NARGS(nargsf), args, kwnames);
    return name == NULL ? NULL : block_make((PyTypeObject *)type, name);
}

/* The same through tp_new, for callers that use the argument tuple (type.__call__). */
static PyObject *
block_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *kwnames = NULL, *name;
    PyObject *stack[1];
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        if (nargs != 0 || PyDict_GET_SIZE(kwargs) != 1) {
            PyErr_SetString(PyExc_TypeError, "measure() takes one argument: the block's name");
            return NULL;
        }
        PyDict_Next(kwargs, &pos, &key, &value);
        kwnames = PyTuple_Pack(1, key);
        if (kwnames == NULL) {
            return NULL;
        }
        stack[0] = value;
        name = block_name_argument(0, stack, kwnames);
        Py_DECREF(kwnames);
    }
    else {
        name = block_name_argument(nargs, ((PyTupleObject *)args)->ob_item, NULL);
    }
    return name == NULL ? NULL : block_make(type, name);
}

static int
block_traverse(Block *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->size);
    /* A failure's exception holds its traceback, whose frames may hold this block. */
    Py_VISIT(self->verdict);
    return 0;
}

static int
block_clear(Block *self)
{
    Py_CLEAR(self->verdict);
    return 0;
}

static void
block_dealloc(Block *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->size);
    Py_CLEAR(self->verdict);
    PyObject_GC_Del(self);
}

static PyObject *
block_enter(Block *self, PyObject *Py_UNUSED(ignored))
{
    if (self->start) {
        /* Two greenlets in one block object would share its clock and verdict. */
        return PyErr_Format(PyExc_RuntimeError,
                            "measure(%R) was entered twice: call measure() for each block",
                            self->name);
    }
    self->start = now_ns();
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *
block_exit(Block *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long end = now_ns();
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes (type, value, traceback)");
        return NULL;
    }
    self->elapsed = (double)(end - self->start) / 1e9;
    PyObject *recorder = PyDict_GetItemWithError(timing_globals, str_active); /* borrowed */
    if (recorder == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE; /* timing has no _active: nothing records */
    }
    if (recorder == Py_None) {
        Py_RETURN_NONE; /* outside a load test: timed, not recorded */
    }
    Py_INCREF(recorder); /* record() may run code that rebinds _active */
    PyObject *elapsed = PyFloat_FromDouble(self->elapsed);
    PyObject *result = NULL;
    if (elapsed != NULL) {
        if (args[0] == Py_None && self->verdict == NULL) {
            /* The common case: one test, one call. */
            PyObject *call[4] = {recorder, self->name, elapsed, self->size};
            result = PyObject_VectorcallMethod(str_record, call, 4, NULL);
        }
        else {
            PyObject *call[6] = {
                recorder, self->name, elapsed, self->size,
                self->verdict == NULL ? Py_None : self->verdict, args[1],
            };
            result = PyObject_Vectorcall(settle, call, 6, NULL);
        }
        Py_DECREF(elapsed);
    }
    Py_DECREF(recorder);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_NONE; /* never suppresses the block's exception */
}

static PyObject *
block_success(Block *self, PyObject *Py_UNUSED(ignored))
{
    Py_INCREF(Py_True);
    Py_XSETREF(self->verdict, Py_True);
    Py_RETURN_NONE;
}

static PyObject *
block_failure(Block *self, PyObject *reason)
{
    if (!PyUnicode_Check(reason) && !PyExceptionInstance_Check(reason)) {
        return PyErr_Format(PyExc_TypeError,
                            "measure(%R).failure() takes a message or an exception",
                            self->name);
    }
    Py_INCREF(reason);
    Py_XSETREF(self->verdict, reason);
    Py_RETURN_NONE;
}

static PyObject *
block_call(Block *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "measure(name) decorates one function");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "measure(name)", 1, 1, &func)) {
        return NULL;
    }
    if (self->start) {
        return PyErr_Format(PyExc_RuntimeError,
                            "measure(%R) is a block in use, not a decorator", self->name);
    }
    PyObject *call[2] = {self->name, func};
    return PyObject_Vectorcall(decorate, call, 2, NULL);
}

static PyObject *
block_get_size(Block *self, void *Py_UNUSED(closure))
{
    Py_INCREF(self->size);
    return self->size;
}

static int
block_set_size(Block *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "measure(%R).size cannot be deleted", self->name);
        return -1;
    }
    if (PyLong_CheckExact(value)) { /* the common case: no call */
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && n >= 0 && n <= max_size) {
            Py_INCREF(value);
            Py_SETREF(self->size, value);
            return 0;
        }
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    PyObject *call[2] = {self->name, value};
    PyObject *checked = PyObject_Vectorcall(checked_size, call, 2, NULL);
    if (checked == NULL) {
        return -1;
    }
    Py_SETREF(self->size, checked);
    return 0;
}

static PyMethodDef block_methods[] = {
    {"__enter__", (PyCFunction)block_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))block_exit, METH_FASTCALL, NULL},
    {"success", (PyCFunction)block_success, METH_NOARGS,
     "Count this block as a success, whatever happens in it."},
    {"failure", (PyCFunction)block_failure, METH_O,
     "Count this block as a failure with ``reason`` (a message or an exception)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef block_members[] = {
    {"name", T_OBJECT_EX, offsetof(Block, name), READONLY, "The block's name."},
    {"elapsed", T_DOUBLE, offsetof(Block, elapsed), 0,
     "Seconds the block took (0.0 until it ends)."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef block_getset[] = {
    {"size", (getter)block_get_size, (setter)block_set_size,
     "Bytes of content the block received (0 unless set), for the content-size figures.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(block_doc,
             "Measurement(name)\n--\n\n"
             "One timed block: ``measure(name)``. Usable once as a ``with`` block, or as a\n"
             "decorator (each call of the decorated function is then a block of its own).\n"
             "See pytest_swarm.timing for the rules.");

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_swarm.timing.Measurement",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = (destructor)block_dealloc,
    .tp_call = (ternaryfunc)block_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = block_doc,
    .tp_traverse = (traverseproc)block_traverse,
    .tp_clear = (inquiry)block_clear,
    .tp_methods = block_methods,
    .tp_members = block_members,
    .tp_getset = block_getset,
    .tp_new = block_new,
    .tp_vectorcall = block_vectorcall,
};

/* -- ResponseParse: pytest_swarm.clients.wire's httptools callbacks ---------------------------
 *
 * llhttp (through httptools) calls these once per response part: the status, each header, the
 * end of the head, each body piece, the end of the message. As Python methods they are about a
 * dozen interpreter frames per response, an eighth of the fast client's instructions per
 * request; as C methods httptools calls them without one. The logic is wire.py's
 * PyResponseParse, line for line (keep the two in step); tests/unit/test_wire_parse.py runs
 * the same responses through both and compares every field.
 */

static PyObject *new_parser;     /* wire._new_parser(parse) -> an httptools parser */
static PyObject *trailing_bytes; /* wire.TrailingBytes */
static PyObject *headers_too_large; /* errors.HeadersTooLarge */
static Py_ssize_t max_headers;   /* wire.MAX_HEADERS */
static PyObject *str_get_status_code, *str_should_keep_alive, *empty_str, *empty_bytes;

typedef struct {
    PyObject_HEAD
    PyObject *headers; /* [(name, value)] as bytes */
    PyObject *body;    /* [bytes] */
    PyObject *reason;  /* str */
    PyObject *coding;  /* bytes: the last Content-Encoding */
    PyObject *parser;  /* the httptools parser feeding this object */
    Py_ssize_t size;
    Py_ssize_t max_body;
    int status;
    char done, complete, headers_done, too_large, keep_alive, chunked, close_after, cookies,
        head_only;
} Parse;

static PyTypeObject ParseType;

/* ASCII case-insensitive equality of bytes with a lower-case literal of the same length. */
static int
lower_equals(PyObject *name, const char *lower, Py_ssize_t n)
{
    if (!PyBytes_Check(name) || PyBytes_GET_SIZE(name) != n) {
        return 0;
    }
    const char *s = PyBytes_AS_STRING(name);
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != lower[i]) {
            return 0;
        }
    }
    return 1;
}

static int
parse_reset_fields(Parse *self)
{
    PyObject *headers = PyList_New(0), *body = PyList_New(0);
    if (headers == NULL || body == NULL) {
        Py_XDECREF(headers);
        Py_XDECREF(body);
        return -1;
    }
    Py_XSETREF(self->headers, headers);
    Py_XSETREF(self->body, body);
    Py_INCREF(empty_str);
    Py_XSETREF(self->reason, empty_str);
    Py_INCREF(empty_bytes);
    Py_XSETREF(self->coding, empty_bytes);
    self->size = 0;
    self->done = self->complete = self->headers_done = self->too_large = 0;
    self->keep_alive = self->chunked = self->close_after = self->cookies = 0;
    self->status = 0;
    return 0;
}

static int
parse_renew_parser(Parse *self)
{
    PyObject *parser = PyObject_CallOneArg(new_parser, (PyObject *)self);
    if (parser == NULL) {
        return -1;
    }
    Py_XSETREF(self->parser, parser);
    return 0;
}

static PyObject *
parse_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "ResponseParse() takes no arguments");
        return NULL;
    }
    if (new_parser == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pytest_swarm._speedups is used before pytest_swarm.clients.wire bound it");
        return NULL;
    }
    Parse *self = (Parse *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->max_body = 0;
    self->head_only = 0;
    if (parse_reset_fields(self) < 0 || parse_renew_parser(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
parse_traverse(Parse *self, visitproc visit, void *arg)
{
    Py_VISIT(self->headers);
    Py_VISIT(self->body);
    Py_VISIT(self->parser); /* the parser holds this object's bound callbacks: a cycle */
    return 0;
}

static int
parse_clear(Parse *self)
{
    Py_CLEAR(self->headers);
    Py_CLEAR(self->body);
    Py_CLEAR(self->parser);
    return 0;
}

static void
parse_dealloc(Parse *self)
{
    PyObject_GC_UnTrack(self);
    parse_clear(self);
    Py_CLEAR(self->reason);
    Py_CLEAR(self->coding);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
parse_reset(Parse *self, PyObject *Py_UNUSED(ignored))
{
    if (parse_reset_fields(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
parse_renew(Parse *self, PyObject *Py_UNUSED(ignored))
{
    if (parse_renew_parser(self) < 0 || parse_reset_fields(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
parse_drop_body(Parse *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *body = PyList_New(0);
    if (body == NULL) {
        return NULL;
    }
    Py_XSETREF(self->body, body);
    Py_RETURN_NONE;
}

static PyObject *
parse_on_message_begin(Parse *self, PyObject *Py_UNUSED(ignored))
{
    if (self->done) {
        /* Bytes after the complete response, in the same read: the connection cannot be
         * trusted with another request. */
        self->keep_alive = 0;
        PyErr_SetNone(trailing_bytes);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
parse_on_status(Parse *self, PyObject *status)
{
    if (!PyBytes_Check(status)) {
        PyErr_SetString(PyExc_TypeError, "on_status takes bytes");
        return NULL;
    }
    PyObject *reason =
        PyUnicode_DecodeLatin1(PyBytes_AS_STRING(status), PyBytes_GET_SIZE(status), NULL);
    if (reason == NULL) {
        return NULL;
    }
    Py_XSETREF(self->reason, reason);
    Py_RETURN_NONE;
}

static PyObject *
parse_on_header(Parse *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_header takes (name, value)");
        return NULL;
    }
    if (self->headers_done) {
        Py_RETURN_NONE; /* a chunked body's trailer fields: not headers of the response */
    }
    PyObject *name = args[0], *value = args[1];
    PyObject *pair = PyTuple_Pack(2, name, value);
    if (pair == NULL) {
        return NULL;
    }
    int failed = PyList_Append(self->headers, pair);
    Py_DECREF(pair);
    if (failed) {
        return NULL;
    }
    if (!PyBytes_Check(name)) {
        Py_RETURN_NONE;
    }
    switch (PyBytes_GET_SIZE(name)) {
    case 17:
        if (lower_equals(name, "transfer-encoding", 17)) {
            self->chunked = 1;
        }
        break;
    case 16:
        if (lower_equals(name, "content-encoding", 16)) {
            Py_INCREF(value);
            Py_XSETREF(self->coding, value);
        }
        break;
    case 10:
        if (lower_equals(name, "set-cookie", 10)) {
            self->cookies = 1;
        }
        break;
    case 11:
        if (lower_equals(name, "set-cookie2", 11)) {
            self->cookies = 1;
        }
        break;
    }
    Py_RETURN_NONE;
}

/* parser.get_status_code(), or -1 with an exception set. */
static int
parser_status(Parse *self)
{
    PyObject *code = PyObject_CallMethodNoArgs(self->parser, str_get_status_code);
    if (code == NULL) {
        return -1;
    }
    long status = PyLong_AsLong(code);
    Py_DECREF(code);
    if (status == -1 && PyErr_Occurred()) {
        return -1;
    }
    return (int)status;
}

/* parser.should_keep_alive() and not close_after: 1, 0, or -1 with an exception set. */
static int
parser_keeps_alive(Parse *self)
{
    PyObject *keep = PyObject_CallMethodNoArgs(self->parser, str_should_keep_alive);
    if (keep == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(keep);
    Py_DECREF(keep);
    if (truth < 0) {
        return -1;
    }
    return truth && !self->close_after;
}

static PyObject *
parse_on_headers_complete(Parse *self, PyObject *Py_UNUSED(ignored))
{
    self->headers_done = 1;
    Py_ssize_t count = PyList_GET_SIZE(self->headers);
    if (count > max_headers) {
        PyObject *message =
            PyUnicode_FromFormat("more than %zd response headers", max_headers);
        if (message != NULL) {
            PyErr_SetObject(headers_too_large, message);
            Py_DECREF(message);
        }
        return NULL;
    }
    int status = parser_status(self);
    if (status < 0) {
        return NULL;
    }
    if (self->chunked) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *pair = PyList_GET_ITEM(self->headers, i);
            if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2
                && lower_equals(PyTuple_GET_ITEM(pair, 0), "content-length", 14)) {
                /* Chunked wins over Content-Length, and such a message may hide a second
                 * one: the connection is not reused (RFC 9112 6.3). */
                self->close_after = 1;
                break;
            }
        }
    }
    if (self->head_only && !(100 <= status && status < 200)) {
        /* A response to HEAD has no body whatever its Content-Length says. */
        int keep = parser_keeps_alive(self);
        if (keep < 0) {
            return NULL;
        }
        self->keep_alive = (char)keep;
        self->status = status;
        self->done = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *
parse_on_body(Parse *self, PyObject *body)
{
    if (!PyBytes_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "on_body takes bytes");
        return NULL;
    }
    self->size += PyBytes_GET_SIZE(body);
    if (self->size > self->max_body) {
        if (!self->too_large) {
            self->too_large = 1;
            PyObject *empty = PyList_New(0); /* freed now, not when an exception's frames go */
            if (empty == NULL) {
                return NULL;
            }
            Py_XSETREF(self->body, empty);
        }
    }
    else if (!self->too_large) {
        if (PyList_Append(self->body, body) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
parse_on_message_complete(Parse *self, PyObject *Py_UNUSED(ignored))
{
    int status = parser_status(self);
    if (status < 0) {
        return NULL;
    }
    if (100 <= status && status < 200 && status != 101) {
        /* An interim response (100 Continue, 103 Early Hints): the final one follows. */
        PyObject *headers = PyList_New(0);
        if (headers == NULL) {
            return NULL;
        }
        Py_XSETREF(self->headers, headers);
        self->headers_done = 0;
        self->chunked = 0;
        Py_INCREF(empty_bytes);
        Py_XSETREF(self->coding, empty_bytes);
        self->cookies = 0;
        Py_RETURN_NONE;
    }
    self->complete = 1;
    if (self->done) {
        Py_RETURN_NONE; /* a HEAD response, ended at its headers already */
    }
    /* Read here: llhttp resets its state once the message is complete. */
    int keep = parser_keeps_alive(self);
    if (keep < 0) {
        return NULL;
    }
    self->keep_alive = (char)keep;
    self->status = status;
    self->done = 1;
    Py_RETURN_NONE;
}

static PyMethodDef parse_methods[] = {
    {"reset", (PyCFunction)parse_reset, METH_NOARGS, "Ready for the next response."},
    {"renew", (PyCFunction)parse_renew, METH_NOARGS,
     "A fresh llhttp state (after a parser error the old one is unusable)."},
    {"drop_body", (PyCFunction)parse_drop_body, METH_NOARGS, "Let go of the partial body now."},
    {"on_message_begin", (PyCFunction)parse_on_message_begin, METH_NOARGS, NULL},
    {"on_status", (PyCFunction)parse_on_status, METH_O, NULL},
    {"on_header", (PyCFunction)(void (*)(void))parse_on_header, METH_FASTCALL, NULL},
    {"on_headers_complete", (PyCFunction)parse_on_headers_complete, METH_NOARGS, NULL},
    {"on_body", (PyCFunction)parse_on_body, METH_O, NULL},
    {"on_message_complete", (PyCFunction)parse_on_message_complete, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef parse_members[] = {
    {"headers", T_OBJECT_EX, offsetof(Parse, headers), 0, NULL},
    {"body", T_OBJECT_EX, offsetof(Parse, body), 0, NULL},
    {"reason", T_OBJECT_EX, offsetof(Parse, reason), 0, NULL},
    {"coding", T_OBJECT_EX, offsetof(Parse, coding), 0, NULL},
    {"parser", T_OBJECT_EX, offsetof(Parse, parser), 0, NULL},
    {"size", T_PYSSIZET, offsetof(Parse, size), 0, NULL},
    {"max_body", T_PYSSIZET, offsetof(Parse, max_body), 0, NULL},
    {"status", T_INT, offsetof(Parse, status), 0, NULL},
    {"done", T_BOOL, offsetof(Parse, done), 0, NULL},
    {"complete", T_BOOL, offsetof(Parse, complete), 0, NULL},
    {"headers_done", T_BOOL, offsetof(Parse, headers_done), 0, NULL},
    {"too_large", T_BOOL, offsetof(Parse, too_large), 0, NULL},
    {"keep_alive", T_BOOL, offsetof(Parse, keep_alive), 0, NULL},
    {"chunked", T_BOOL, offsetof(Parse, chunked), 0, NULL},
    {"close_after", T_BOOL, offsetof(Parse, close_after), 0, NULL},
    {"cookies", T_BOOL, offsetof(Parse, cookies), 0, NULL},
    {"head_only", T_BOOL, offsetof(Parse, head_only), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ParseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_swarm.clients.wire.ResponseParse",
    .tp_basicsize = sizeof(Parse),
    .tp_dealloc = (destructor)parse_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "httptools callbacks for one response, and the parser feeding them (in C).",
    .tp_traverse = (traverseproc)parse_traverse,
    .tp_clear = (inquiry)parse_clear,
    .tp_methods = parse_methods,
    .tp_members = parse_members,
    .tp_new = parse_new,
};

static PyObject *
speedups_bind_wire(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *new_parser_, *trailing_, *too_large_;
    Py_ssize_t max_headers_;
    if (!PyArg_ParseTuple(args, "OOOn:bind_wire", &new_parser_, &trailing_, &too_large_,
                          &max_headers_)) {
        return NULL;
    }
    Py_INCREF(new_parser_);
    Py_XSETREF(new_parser, new_parser_);
    Py_INCREF(trailing_);
    Py_XSETREF(trailing_bytes, trailing_);
    Py_INCREF(too_large_);
    Py_XSETREF(headers_too_large, too_large_);
    max_headers = max_headers_;
    Py_RETURN_NONE;
}

/* -- readable(fd): the fast client's liveness check of an idle kept-alive connection ---------
 *
 * True when the descriptor has something to read, an error or a hang-up pending, or is no
 * descriptor at all: either way the connection must not carry a request (urllib3's check).
 * One poll(2) with a zero timeout; in Python (select.poll(), register, poll) it was about 5 %
 * of a fast_http request's instructions. connect.Connection.dropped falls back to that. */
static PyObject *
speedups_readable(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        Py_RETURN_TRUE; /* a closed socket (or no descriptor) */
    }
    struct pollfd p = {.fd = (int)fd, .events = POLLIN, .revents = 0};
    int n = poll(&p, 1, 0);
    if (n < 0) {
        Py_RETURN_TRUE; /* cannot tell: a new connection is the safe answer */
    }
    return PyBool_FromLong(n > 0 && p.revents != 0);
}

/* -- recv_stamped(sock, size): a receive with the kernel's time of the bytes' arrival ---------
 *
 * What reading._recv_stamped does in Python (recvmsg and an SO_TIMESTAMPNS message), without
 * the tuple of four, the list of messages and the struct unpacking. Returns (bytes, arrived):
 * arrived is the CLOCK_MONOTONIC time (time.perf_counter()'s clock) at which the kernel took in
 * the last segment these bytes came in, or 0.0 when it gave no time (timestamps not enabled on
 * the socket, or not Linux). The kernel's time is CLOCK_REALTIME: it is turned into the
 * monotonic clock by its age (realtime now minus the stamp), never negative, so a step of the
 * wall clock can make a figure short or long by the step, never later than now. Errors are
 * socket.recv's: BlockingIOError when there is nothing to read, and so on.
 *
 * The GIL is kept: the socket is non-blocking (the call cannot wait), and releasing it would
 * let another thread take the process between the bytes and their time. */
static PyObject *
speedups_recv_stamped(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_stamped(sock, size) takes two arguments");
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || size > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "recv_stamped: size must be in 0 .. 16 MiB");
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) {
        return NULL;
    }
    struct iovec iov = {.iov_base = PyBytes_AS_STRING(data), .iov_len = (size_t)size};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, 0);
    } while (n < 0 && errno == EINTR && !PyErr_CheckSignals());
    if (n < 0) {
        Py_DECREF(data);
        return PyErr_Occurred() ? NULL : PyErr_SetFromErrno(PyExc_OSError);
    }
    if (n != size && _PyBytes_Resize(&data, n) < 0) {
        return NULL;
    }
    double arrived = 0.0;
#ifdef SO_TIMESTAMPNS
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS
            && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec stamp, real, mono;
            memcpy(&stamp, CMSG_DATA(c), sizeof(stamp));
            clock_gettime(CLOCK_REALTIME, &real);
            clock_gettime(CLOCK_MONOTONIC, &mono);
            long long age = (long long)(real.tv_sec - stamp.tv_sec) * 1000000000LL
                            + (real.tv_nsec - stamp.tv_nsec);
            if (age < 0) {
                age = 0;
            }
            long long at = (long long)mono.tv_sec * 1000000000LL + mono.tv_nsec - age;
            arrived = (double)at / 1e9;
            break;
        }
    }
#endif
    PyObject *pair = PyTuple_New(2);
    PyObject *when = PyFloat_FromDouble(arrived);
    if (pair == NULL || when == NULL) {
        Py_XDECREF(pair);
        Py_XDECREF(when);
        Py_DECREF(data);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, data);
    PyTuple_SET_ITEM(pair, 1, when);
    return pair;
}

static PyObject *
speedups_bind(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *globals, *settle_, *name_, *size_, *decorate_;
    long long max_size_;
    if (!PyArg_ParseTuple(args, "O!OOOOL:bind", &PyDict_Type, &globals, &settle_, &name_,
                          &size_, &decorate_, &max_size_)) {
        return NULL;
    }
    Py_INCREF(globals);
    Py_XSETREF(timing_globals, globals);
    Py_INCREF(settle_);
    Py_XSETREF(settle, settle_);
    Py_INCREF(name_);
    Py_XSETREF(checked_name, name_);
    Py_INCREF(size_);
    Py_XSETREF(checked_size, size_);
    Py_INCREF(decorate_);
    Py_XSETREF(decorate, decorate_);
    max_size = max_size_;
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"recv_stamped", (PyCFunction)(void (*)(void))speedups_recv_stamped, METH_FASTCALL,
     "recv_stamped(sock, size) -> (bytes, arrived): one receive and the perf_counter() time "
     "the kernel took its last bytes in (0.0: no time given)."},
    {"readable", speedups_readable, METH_O,
     "readable(fd) -> bool: a zero-timeout poll for input, errors or hang-up (True also for "
     "a negative descriptor or a failed poll)."},
    {"bind_wire", speedups_bind_wire, METH_VARARGS,
     "bind_wire(new_parser, TrailingBytes, HeadersTooLarge, max_headers): the Python side of "
     "ResponseParse (pytest_swarm.clients.wire calls this once)."},
    {"bind", speedups_bind, METH_VARARGS,
     "bind(timing_globals, settle, checked_name, checked_size, decorate, max_size): "
     "the Python side of the block (pytest_swarm.timing calls this once)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_swarm._speedups",
    .m_doc = "C implementations of pytest_swarm.timing.Measurement and "
             "pytest_swarm.clients.wire.ResponseParse (optional).",
    .m_size = -1,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_active = PyUnicode_InternFromString("_active");
    str_record = PyUnicode_InternFromString("record");
    zero = PyLong_FromLong(0);
    if (str_active == NULL || str_record == NULL || zero == NULL) {
        return NULL;
    }
    str_get_status_code = PyUnicode_InternFromString("get_status_code");
    str_should_keep_alive = PyUnicode_InternFromString("should_keep_alive");
    empty_str = PyUnicode_FromString("");
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    if (str_get_status_code == NULL || str_should_keep_alive == NULL || empty_str == NULL
        || empty_bytes == NULL) {
        return NULL;
    }
    if (PyType_Ready(&BlockType) < 0 || PyType_Ready(&ParseType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&BlockType);
    if (PyModule_AddObject(module, "Measurement", (PyObject *)&BlockType) < 0) {
        Py_DECREF(&BlockType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&ParseType);
    if (PyModule_AddObject(module, "ResponseParse", (PyObject *)&ParseType) < 0) {
        Py_DECREF(&ParseType);
        Py_DECREF(module);
        return NULL;
    }
#ifdef SO_TIMESTAMPNS
    /* The socket option recv_stamped reads the time of (the clients turn it on per connection:
     * Python's socket module does not name it). */
    if (PyModule_AddIntConstant(module, "SO_TIMESTAMPNS", SO_TIMESTAMPNS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
