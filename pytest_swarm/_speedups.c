/* The measure block in C: pytest_swarm.timing's Measurement with the same behaviour.
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
#include <time.h>

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
    {"bind", speedups_bind, METH_VARARGS,
     "bind(timing_globals, settle, checked_name, checked_size, decorate, max_size): "
     "the Python side of the block (pytest_swarm.timing calls this once)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_swarm._speedups",
    .m_doc = "C implementation of pytest_swarm.timing.Measurement (optional).",
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
    if (PyType_Ready(&BlockType) < 0) {
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
    return module;
}
