/* wire.count_elements in C: the walk over a frame's msgpack headers that bounds what decoding
 * it may allocate, before anything is unpacked.
 *
 * Why C: every frame the controller receives is walked first (1,000 workers x 1 delta a
 * second, ~90 objects each); the Python walk is a loop of bytecode per object, about a tenth
 * of the controller's whole cost per delta (benchmarks/aggregator.py). Here it is a table
 * lookup and a few additions per object.
 *
 * The rules are wire.py's _py_count_elements, step for step, with the same errors (the
 * exception classes are bound by wire.py through configure(), the messages are the same):
 * tests/unit/test_wire.py runs against both, and tests/unit/test_frames_kernel.py compares
 * them with Hypothesis on real, truncated, extended and random frames.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *wire_error; /* wire.WireError */
static PyObject *too_large;  /* wire.FrameTooLarge */

/* The layout of a msgpack object by its first byte, as wire._layout builds it. */
enum kind { SCALAR, FIXSTR, SIZED, ARRAY, MAP, REFUSED };
static unsigned char extra_of[256]; /* bytes after the type byte (fixed-size scalars) */
static unsigned char field_of[256]; /* bytes of the size field (str, bin, array, map) */
static unsigned char kind_of[256];

static void
build_layout(void)
{
    for (int b = 0; b < 256; b++) {
        extra_of[b] = 0;
        field_of[b] = 0;
        kind_of[b] = REFUSED;
    }
    for (int b = 0x00; b < 0x80; b++)
        kind_of[b] = SCALAR; /* positive fixint */
    for (int b = 0xE0; b < 0x100; b++)
        kind_of[b] = SCALAR; /* negative fixint */
    for (int b = 0x80; b < 0x90; b++)
        kind_of[b] = MAP; /* fixmap */
    for (int b = 0x90; b < 0xA0; b++)
        kind_of[b] = ARRAY; /* fixarray */
    for (int b = 0xA0; b < 0xC0; b++)
        kind_of[b] = FIXSTR;
    static const int scalars[][2] = {{0xC0, 0}, {0xC2, 0}, {0xC3, 0}, {0xCA, 4}, {0xCB, 8},
                                     {0xCC, 1}, {0xCD, 2}, {0xCE, 4}, {0xCF, 8}, {0xD0, 1},
                                     {0xD1, 2}, {0xD2, 4}, {0xD3, 8}};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        kind_of[scalars[i][0]] = SCALAR; /* nil, false, true, floats, uint8..64, int8..64 */
        extra_of[scalars[i][0]] = (unsigned char)scalars[i][1];
    }
    static const int sized[][2] = {{0xC4, 1}, {0xC5, 2}, {0xC6, 4},
                                   {0xD9, 1}, {0xDA, 2}, {0xDB, 4}};
    for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) {
        kind_of[sized[i][0]] = SIZED; /* bin8/16/32, str8/16/32 */
        field_of[sized[i][0]] = (unsigned char)sized[i][1];
    }
    kind_of[0xDC] = ARRAY, field_of[0xDC] = 2;
    kind_of[0xDD] = ARRAY, field_of[0xDD] = 4;
    kind_of[0xDE] = MAP, field_of[0xDE] = 2;
    kind_of[0xDF] = MAP, field_of[0xDF] = 4;
    /* 0xC1 (never used) and the ext types stay refused. */
}

/* count_elements(frame: bytes, limit: int) -> int */
static PyObject *
frames_count_elements(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "count_elements(frame, limit) takes two arguments");
        return NULL;
    }
    if (wire_error == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pytest_swarm.cluster._frames is not configured");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "count_elements: the frame must be bytes");
        return NULL;
    }
    long long limit = PyLong_AsLongLong(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *frame = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    /* Signed 64-bit positions: a skip may take pos past the end (by at most one length field
     * of 2**32 - 1), which the next step or the final check reports, as in Python. */
    const long long end = (long long)PyBytes_GET_SIZE(args[0]);
    long long pos = 0, pending = 1, seen = 0;
    while (pending) {
        if (pos >= end) {
            PyErr_SetString(wire_error, "truncated frame");
            return NULL;
        }
        unsigned first = frame[pos];
        pos += 1;
        pending -= 1;
        seen += 1;
        if (seen > limit) {
            PyErr_Format(too_large, "frame holds more than %lld objects", limit);
            return NULL;
        }
        unsigned kind = kind_of[first];
        if (kind == SCALAR) {
            pos += extra_of[first];
            continue;
        }
        if (kind == FIXSTR) {
            pos += first & 0x1F;
            continue;
        }
        if (kind == REFUSED) {
            PyErr_Format(wire_error, "unsupported msgpack type 0x%02x", first);
            return NULL;
        }
        long long size;
        unsigned field = field_of[first];
        if (field) {
            /* int.from_bytes(frame[pos : pos + field], "big"): what is there, if truncated. */
            size = 0;
            for (unsigned i = 0; i < field && pos + i < end; i++)
                size = size << 8 | frame[pos + i];
            pos += field;
        }
        else {
            size = first & 0x0F;
        }
        if (kind == SIZED) {
            pos += size;
        }
        else {
            pending += kind == MAP ? size * 2 : size;
            /* Every object takes at least one byte: a header announcing more cannot be true. */
            if (pending > end - pos) {
                PyErr_SetString(wire_error, "container larger than the frame");
                return NULL;
            }
        }
    }
    if (pos != end) {
        PyErr_SetString(wire_error, pos < end ? "bytes after the message" : "truncated frame");
        return NULL;
    }
    return PyLong_FromLongLong(seen);
}

static PyObject *
frames_configure(PyObject *module, PyObject *args)
{
    PyObject *error, *large;
    if (!PyArg_ParseTuple(args, "OO:configure", &error, &large))
        return NULL;
    if (!PyExceptionClass_Check(error) || !PyExceptionClass_Check(large)) {
        PyErr_SetString(PyExc_TypeError, "configure: two exception classes");
        return NULL;
    }
    Py_INCREF(error);
    Py_INCREF(large);
    Py_XSETREF(wire_error, error);
    Py_XSETREF(too_large, large);
    Py_RETURN_NONE;
}

static PyMethodDef frames_methods[] = {
    {"configure", frames_configure, METH_VARARGS,
     "configure(WireError, FrameTooLarge): the exceptions count_elements raises (wire.py's)."},
    {"count_elements", (PyCFunction)(void (*)(void))frames_count_elements, METH_FASTCALL,
     "count_elements(frame, limit): wire._py_count_elements in C (the same walk and errors)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT,
    "pytest_swarm.cluster._frames",
    "wire.count_elements in C (see wire.py, which falls back to its pure-Python walk where this "
    "module was not built).",
    -1,
    frames_methods,
};

PyMODINIT_FUNC
PyInit__frames(void)
{
    build_layout();
    return PyModule_Create(&frames_module);
}
