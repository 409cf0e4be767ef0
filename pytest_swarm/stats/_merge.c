/* The controller's merge loop in C: pytest_swarm.stats.histogram's unpack and bucket adds.
 *
 * Why C: the xdist controller parses, checks and adds every request name's histogram of every
 * worker's delta (1,000 workers x 20 names a second: benchmarks/aggregator.py). In Python each
 * bucket costs bytecode in several passes (range checks, order checks, the sum's bounds, then
 * one add into the run's totals and one into the timeline's second); here each is a few
 * machine instructions, and what remains per bucket is the Python int arithmetic of the adds.
 *
 * The rules are histogram.py's, check for check and in the same order, with the same errors
 * (ValueError, the same messages): unpack() refuses exactly what the pure-Python unpack()
 * refuses, and the two return equal lists (tests/unit/test_merge_kernels.py compares them on
 * random and hostile blobs with Hypothesis). The numbers the checks use (the bucket layout,
 * the range, the bounds on a peer's figures and on a blob's size) are bound once by
 * histogram.py through configure(), so they are written down in one place only.
 *
 * Arithmetic: the wire holds unsigned 64-bit integers. Python compares sums of any size; here
 * every sum saturates at UINT64_MAX, which gives the same verdict: a sum of counts that
 * overflows cannot equal a 64-bit total, and the sum's lower bound that overflows lies above
 * any sum a peer may claim (sums are checked against 2**63 - 1 first) while an upper bound that
 * overflows lies above it too.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Bound by configure() (one interpreter per process: the controller runs no subinterpreters). */
static int configured;
static uint64_t top_index;        /* the highest bucket index a recorded value reaches */
static unsigned half_magnitude;   /* log2 of half the sub-bucket count */
static uint64_t half_count;       /* half the sub-bucket count */
static uint64_t coarse_mask;      /* 2**COARSE_BITS - 1: the low bits a pool of buckets shares */
static unsigned coarse_shift;     /* COARSE_BITS */
static uint64_t highest_us;       /* the top of the range: larger values are overflow */
static uint64_t max_value_us;     /* no latency (max) beyond this */
static uint64_t max_sum_us;       /* no sum beyond this */
static Py_ssize_t max_packed;     /* the most bytes a blob may hold */

#define HEAD 6 /* per histogram: total, overflow, sum, min, max, number of buckets */

static inline uint64_t
load_le64(const unsigned char *p)
{
    /* The wire is little-endian on every host; compilers turn this into one load on x86. */
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* histogram.bucket_upper_bound / bucket_lower_bound (closed forms of hdrh's arithmetic). */
static inline uint64_t
upper_bound(uint64_t index)
{
    uint64_t level = index >> half_magnitude;
    if (level == 0)
        return index;
    uint64_t sub = (index & (half_count - 1)) + half_count;
    return ((sub + 1) << (level - 1)) - 1;
}

static inline uint64_t
lower_bound(uint64_t index)
{
    uint64_t level = index >> half_magnitude;
    if (level == 0)
        return index;
    return ((index & (half_count - 1)) + half_count) << (level - 1);
}

/* The lower bound of the pool of 2**COARSE_BITS buckets ``index`` belongs to. */
static inline uint64_t
pool_lower(uint64_t index)
{
    return lower_bound(index & ~coarse_mask);
}

static inline uint64_t
add_sat(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return s < a ? UINT64_MAX : s;
}

static inline uint64_t
mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

static PyObject *
fail(const char *message)
{
    PyErr_SetString(PyExc_ValueError, message);
    return NULL;
}

/* A list of n Python ints from values[0..n). */
static PyObject *
int_list(const uint64_t *values, Py_ssize_t n)
{
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyLong_FromUnsignedLongLong(values[i]);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* The checks of one histogram (the loop body of histogram.py's unpack, in its order): the
 * message of the first that fails, or NULL when it passes them all. */
static const char *
check_one(const uint64_t *h, const uint64_t *index, const uint64_t *count)
{
    uint64_t total = h[0], overflow = h[1], sum_us = h[2], min_us = h[3], max_us = h[4];
    uint64_t size = h[5];
    uint64_t counted = overflow;
    int wrapped = 0;
    for (uint64_t i = 0; i < size; i++) {
        uint64_t next = counted + count[i];
        wrapped |= next < counted;
        counted = next;
    }
    if (wrapped || counted != total)
        return "histograms: bucket counts do not add up to the total";
    if (max_us > max_value_us || sum_us > max_sum_us)
        return "histograms: max or sum beyond any measurable latency";
    if (total == 0) {
        if (sum_us || min_us || max_us)
            return "histograms: an empty histogram with a sum, min or max";
        return NULL;
    }
    if (size) {
        uint64_t low = index[0], high = index[size - 1];
        if (min_us > upper_bound(low | coarse_mask) || min_us < pool_lower(low) ||
            max_us < pool_lower(high))
            return "histograms: min or max outside the recorded buckets";
    }
    else if (min_us < lower_bound(top_index)) {
        return "histograms: min or max outside the recorded buckets";
    }
    if (min_us > max_us)
        return "histograms: min above max";
    if (overflow && max_us <= highest_us)
        return "histograms: overflow with a maximum inside the range";
    uint64_t least = mul_sat(overflow, highest_us + 1);
    uint64_t most = mul_sat(overflow, max_us);
    for (uint64_t i = 0; i < size; i++) {
        least = add_sat(least, mul_sat(count[i], pool_lower(index[i])));
        most = add_sat(most, mul_sat(count[i], upper_bound(index[i])));
    }
    if (!(least <= sum_us && sum_us <= most))
        return "histograms: sum inconsistent with the buckets";
    return NULL;
}

/* unpack(data, n) -> list of (indices, counts, total, overflow, sum, min, max). */
static PyObject *
merge_unpack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "unpack(data, n) takes two arguments");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "pytest_swarm.stats._merge is not configured");
        return NULL;
    }
    PyObject *data = args[0];
    Py_ssize_t n = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "histograms: a negative number of histograms");
        return NULL;
    }
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) % 8 ||
        PyBytes_GET_SIZE(data) > max_packed)
        return fail("histograms: expected a blob of 8-byte integers");
    Py_ssize_t count = PyBytes_GET_SIZE(data) / 8;
    if (n > count / HEAD)
        return fail("histograms: blob shorter than its head");
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(data);
    /* The blob in host integers: at most MAX_PACKED_BYTES, already held once as bytes. */
    uint64_t *values = PyMem_Malloc(count ? (size_t)count * sizeof(uint64_t) : 1);
    if (values == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++)
        values[i] = load_le64(raw + 8 * i);
    PyObject *out = NULL;
    const char *problem = NULL;
    Py_ssize_t head_len = HEAD * n;
    /* Every size is at most the blob's length once the sum fits: a sum that wraps does not
     * match the blob (its true value exceeds any length). */
    uint64_t buckets = 0;
    int wrapped = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t next = buckets + values[HEAD * k + HEAD - 1];
        wrapped |= next < buckets;
        buckets = next;
    }
    if (wrapped || buckets > (uint64_t)(count - head_len) / 2 ||
        (uint64_t)(count - head_len) != 2 * buckets) {
        problem = "histograms: bucket lists do not match the head";
        goto done;
    }
    const uint64_t *indices = values + head_len;
    const uint64_t *numbers = indices + buckets;
    for (uint64_t i = 0; i < buckets; i++) {
        if (numbers[i] == 0) {
            problem = "histograms: bucket index or count out of range";
            goto done;
        }
    }
    for (uint64_t i = 0; i < buckets; i++) {
        if (indices[i] > top_index) {
            problem = "histograms: bucket index or count out of range";
            goto done;
        }
    }
    /* Each histogram's buckets strictly ascending (a descent only where the next starts). */
    uint64_t start = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t size = values[HEAD * k + HEAD - 1];
        for (uint64_t i = start + 1; i < start + size; i++) {
            if (indices[i - 1] >= indices[i]) {
                problem = "histograms: bucket indices not strictly ascending";
                goto done;
            }
        }
        start += size;
    }
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    start = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        const uint64_t *h = values + HEAD * k;
        uint64_t size = h[5];
        problem = check_one(h, indices + start, numbers + start);
        if (problem != NULL)
            goto done;
        /* (indices, counts, total, overflow, sum, min, max); an empty histogram has no
         * bucket (every count is >= 1) and no figure, as histogram.py appends it. */
        PyObject *item = PyTuple_New(7);
        if (item == NULL)
            goto done;
        PyList_SET_ITEM(out, k, item); /* owned by out from here: freed with it on error */
        PyObject *field = int_list(indices + start, h[0] ? (Py_ssize_t)size : 0);
        if (field == NULL)
            goto done;
        PyTuple_SET_ITEM(item, 0, field);
        field = int_list(numbers + start, h[0] ? (Py_ssize_t)size : 0);
        if (field == NULL)
            goto done;
        PyTuple_SET_ITEM(item, 1, field);
        for (int f = 0; f < 5; f++) {
            field = PyLong_FromUnsignedLongLong(h[0] ? h[f] : 0);
            if (field == NULL)
                goto done;
            PyTuple_SET_ITEM(item, 2 + f, field);
        }
        start += size;
    }
done:
    PyMem_Free(values);
    if (problem != NULL || PyErr_Occurred()) {
        /* A refused blob, or no memory for its objects: nothing half-built escapes. */
        Py_CLEAR(out);
        return problem != NULL ? fail(problem) : NULL;
    }
    return out;
}

/* The two sequences of a bucket add, as fast sequences of equal length; 0 on success. */
static int
pairs(PyObject *indices, PyObject *numbers, PyObject **fi, PyObject **fn)
{
    *fi = PySequence_Fast(indices, "bucket indices must be a sequence");
    if (*fi == NULL)
        return -1;
    *fn = PySequence_Fast(numbers, "bucket counts must be a sequence");
    if (*fn == NULL) {
        Py_CLEAR(*fi);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(*fi) != PySequence_Fast_GET_SIZE(*fn)) {
        PyErr_SetString(PyExc_ValueError, "bucket indices and counts differ in length");
        Py_CLEAR(*fi);
        Py_CLEAR(*fn);
        return -1;
    }
    return 0;
}

/* counts[key] = counts.get(key, 0) + n */
static int
dict_add(PyObject *counts, PyObject *key, PyObject *n)
{
    PyObject *old = PyDict_GetItemWithError(counts, key); /* borrowed */
    if (old == NULL) {
        if (PyErr_Occurred())
            return -1;
        return PyDict_SetItem(counts, key, n);
    }
    PyObject *sum = PyNumber_Add(old, n);
    if (sum == NULL)
        return -1;
    int status = PyDict_SetItem(counts, key, sum);
    Py_DECREF(sum);
    return status;
}

/* The key of the pool ``index`` belongs to, min(index | coarse_mask, top_index), as a Python
 * int (borrowed: one per pool, made by configure(), so that no add allocates a key). */
static PyObject **pool_keys;
static Py_ssize_t pool_count;

static PyObject *
pool_key(PyObject *index_object)
{
    unsigned long long index = PyLong_AsUnsignedLongLong(index_object);
    if (index == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (index > top_index) {
        /* Checked indices never are: the Python table would raise the same. */
        PyErr_SetString(PyExc_IndexError, "bucket index beyond the range");
        return NULL;
    }
    return pool_keys[index >> coarse_shift];
}

/* accumulate(into, pooled, indices, numbers): each (index, count) pair added into ``into``
 * (a dict of sparse counts, or a dense list indexed by bucket) and, unless None, into the dict
 * ``pooled`` under its pool's key; histogram._py_accumulate in one C pass. */
static PyObject *
merge_accumulate(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "accumulate(into, pooled, indices, numbers) takes four arguments");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "pytest_swarm.stats._merge is not configured");
        return NULL;
    }
    PyObject *into = args[0], *pooled = args[1];
    int dense = PyList_CheckExact(into);
    if (!dense && !PyDict_CheckExact(into)) {
        PyErr_SetString(PyExc_TypeError, "accumulate: into must be a dict or a list");
        return NULL;
    }
    if (pooled == Py_None)
        pooled = NULL;
    else if (!PyDict_CheckExact(pooled)) {
        PyErr_SetString(PyExc_TypeError, "accumulate: pooled must be a dict or None");
        return NULL;
    }
    PyObject *fi, *fn;
    if (pairs(args[2], args[3], &fi, &fn) < 0)
        return NULL;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(fi);
    PyObject **keys = PySequence_Fast_ITEMS(fi), **ns = PySequence_Fast_ITEMS(fn);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (dense) {
            Py_ssize_t index = PyNumber_AsSsize_t(keys[i], PyExc_IndexError);
            if (index == -1 && PyErr_Occurred())
                goto error;
            /* Checked indices are never negative: one that is would be a bug, not a wrap. */
            if (index < 0 || index >= PyList_GET_SIZE(into)) {
                PyErr_SetString(PyExc_IndexError, "bucket index out of the dense counts");
                goto error;
            }
            PyObject *old = PyList_GET_ITEM(into, index);
            PyObject *sum = PyNumber_Add(old, ns[i]);
            if (sum == NULL)
                goto error;
            PyList_SET_ITEM(into, index, sum);
            Py_DECREF(old);
        }
        else if (dict_add(into, keys[i], ns[i]) < 0) {
            goto error;
        }
        if (pooled != NULL) {
            PyObject *key = pool_key(keys[i]);
            if (key == NULL || dict_add(pooled, key, ns[i]) < 0)
                goto error;
        }
    }
    Py_DECREF(fi);
    Py_DECREF(fn);
    Py_RETURN_NONE;
error:
    Py_DECREF(fi);
    Py_DECREF(fn);
    return NULL;
}

/* add_pooled(counts, indices, numbers): accumulate's pooled add alone (Histogram.merge_pooled). */
static PyObject *
merge_add_pooled(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add_pooled(counts, indices, numbers) takes three arguments");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "pytest_swarm.stats._merge is not configured");
        return NULL;
    }
    if (!PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add_pooled: counts must be a dict");
        return NULL;
    }
    PyObject *fi, *fn;
    if (pairs(args[1], args[2], &fi, &fn) < 0)
        return NULL;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(fi);
    PyObject **keys = PySequence_Fast_ITEMS(fi), **ns = PySequence_Fast_ITEMS(fn);
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *key = pool_key(keys[i]);
        if (key == NULL || dict_add(args[0], key, ns[i]) < 0) {
            Py_DECREF(fi);
            Py_DECREF(fn);
            return NULL;
        }
    }
    Py_DECREF(fi);
    Py_DECREF(fn);
    Py_RETURN_NONE;
}

static PyObject *
merge_configure(PyObject *module, PyObject *args)
{
    unsigned long long top, half_mag, coarse_bits, highest, max_value, max_sum;
    Py_ssize_t packed;
    if (!PyArg_ParseTuple(args, "KKKKKKn:configure", &top, &half_mag, &coarse_bits, &highest,
                          &max_value, &max_sum, &packed))
        return NULL;
    /* The arithmetic above shifts by these: refuse a layout it was not written for. */
    if (half_mag < 1 || half_mag > 30 || coarse_bits > 30 || coarse_bits >= half_mag ||
        top >= (1ULL << 40) || packed < 0) {
        PyErr_SetString(PyExc_ValueError, "configure: a bucket layout this module cannot hold");
        return NULL;
    }
    /* One key object per pool (top >> coarse_bits + 1 of them: ~730 for hdrh's layout). */
    Py_ssize_t count = (Py_ssize_t)(top >> coarse_bits) + 1;
    PyObject **keys = PyMem_Calloc((size_t)count, sizeof(PyObject *));
    if (keys == NULL)
        return PyErr_NoMemory();
    uint64_t mask = (1ULL << coarse_bits) - 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t key = ((uint64_t)i << coarse_bits) | mask;
        keys[i] = PyLong_FromUnsignedLongLong(key < top ? key : top);
        if (keys[i] == NULL) {
            for (Py_ssize_t j = 0; j < i; j++)
                Py_DECREF(keys[j]);
            PyMem_Free(keys);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < pool_count; i++)
        Py_DECREF(pool_keys[i]);
    PyMem_Free(pool_keys);
    pool_keys = keys;
    pool_count = count;
    top_index = top;
    coarse_shift = (unsigned)coarse_bits;
    half_magnitude = (unsigned)half_mag;
    half_count = 1ULL << half_mag;
    coarse_mask = (1ULL << coarse_bits) - 1;
    highest_us = highest;
    max_value_us = max_value;
    max_sum_us = max_sum;
    max_packed = packed;
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef merge_methods[] = {
    {"configure", merge_configure, METH_VARARGS,
     "configure(top_index, half_magnitude, coarse_bits, highest_us, max_value_us, max_sum_us,"
     " max_packed_bytes): the layout and bounds unpack checks against (histogram.py's)."},
    {"unpack", (PyCFunction)(void (*)(void))merge_unpack, METH_FASTCALL,
     "unpack(data, n): histogram.unpack in C (the same checks, errors and result)."},
    {"accumulate", (PyCFunction)(void (*)(void))merge_accumulate, METH_FASTCALL,
     "accumulate(into, pooled, indices, numbers): histogram._py_accumulate in C."},
    {"add_pooled", (PyCFunction)(void (*)(void))merge_add_pooled, METH_FASTCALL,
     "add_pooled(counts, indices, numbers): histogram._py_add_pooled in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef merge_module = {
    PyModuleDef_HEAD_INIT,
    "pytest_swarm.stats._merge",
    "The controller's histogram merge loop in C (see histogram.py, which falls back to its "
    "pure-Python functions where this module was not built).",
    -1,
    merge_methods,
};

PyMODINIT_FUNC
PyInit__merge(void)
{
    return PyModule_Create(&merge_module);
}
