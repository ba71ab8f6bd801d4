/* The linear classifier's scores: classify_wire (wire datums, from the converter's
 * caches) and score_vectors (weighed vectors), against one copy of its model. */
#include "kernels.h"

/* Features of one datum kept on the stack up to this many; more go to the heap. */
#define STACK_FEATURES 64
/* Up to this many features a repeated name is looked for pairwise, past it by a dict. */
#define PAIRWISE_FEATURES 48

typedef struct {
    PyObject **names;   /* borrowed */
    double *values;
    Py_ssize_t count;
    Py_ssize_t capacity;
    PyObject *stack_names[STACK_FEATURES];
    double stack_values[STACK_FEATURES];
} Features;

static void features_init(Features *f) {
    f->names = f->stack_names;
    f->values = f->stack_values;
    f->count = 0;
    f->capacity = STACK_FEATURES;
}

static void features_free(Features *f) {
    if (f->names != f->stack_names) {
        PyMem_Free(f->names);
        PyMem_Free(f->values);
    }
    features_init(f);
}

/* Room for `more` features; 0 on success, -1 with MemoryError set. */
static int features_reserve(Features *f, Py_ssize_t more) {
    Py_ssize_t needed = f->count + more;
    if (needed <= f->capacity) {
        return 0;
    }
    Py_ssize_t capacity = f->capacity * 2 > needed ? f->capacity * 2 : needed;
    PyObject **names = PyMem_New(PyObject *, capacity);
    double *values = PyMem_New(double, capacity);
    if (names == NULL || values == NULL) {
        PyMem_Free(names);
        PyMem_Free(values);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(names, f->names, f->count * sizeof(PyObject *));
    memcpy(values, f->values, f->count * sizeof(double));
    if (f->names != f->stack_names) {
        PyMem_Free(f->names);
        PyMem_Free(f->values);
    }
    f->names = names;
    f->values = values;
    f->capacity = capacity;
    return 0;
}

/* The features the converter's cache holds for the string pair (key, value), both bytes,
 * appended; 1, or 0 when it is not the plain case (take the Python path), or -1. */
static int append_string(PyObject *strings, PyObject *key, PyObject *value, Features *f) {
    PyObject *token = PyTuple_Pack(2, key, value);
    if (token == NULL) {
        return -1;
    }
    PyObject *entry = PyDict_GetItemWithError(strings, token);
    Py_DECREF(token);
    if (entry == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    /* One string rule: ((names...), (weights...)); a str is a refused key's error. */
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 1) {
        return 0;
    }
    PyObject *part = PyTuple_GET_ITEM(entry, 0);
    if (!PyTuple_CheckExact(part) || PyTuple_GET_SIZE(part) != 2) {
        return 0;
    }
    PyObject *rule_names = PyTuple_GET_ITEM(part, 0);
    PyObject *weights = PyTuple_GET_ITEM(part, 1);
    if (!PyTuple_CheckExact(rule_names) || !PyTuple_CheckExact(weights) ||
        PyTuple_GET_SIZE(rule_names) != PyTuple_GET_SIZE(weights)) {
        return 0;
    }
    Py_ssize_t m = PyTuple_GET_SIZE(rule_names);
    if (features_reserve(f, m) < 0) {
        return -1;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *name = PyTuple_GET_ITEM(rule_names, j);
        PyObject *weight = PyTuple_GET_ITEM(weights, j);
        if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(weight)) {
            return 0;
        }
        f->names[f->count] = name;
        f->values[f->count] = PyFloat_AS_DOUBLE(weight);
        f->count++;
    }
    return 1;
}

/* The feature of a number key (bytes) that meets one num rule, once the converter has
 * seen it, appended with its value; 1, or 0 (not the plain case), or -1. */
static int append_number(PyObject *numbers, PyObject *key, double value, Features *f) {
    PyObject *name = PyDict_GetItemWithError(numbers, key);
    if (name == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyUnicode_CheckExact(name)) {
        return 0;
    }
    if (features_reserve(f, 1) < 0) {
        return -1;
    }
    f->names[f->count] = name;
    f->values[f->count] = value;
    f->count++;
    return 1;
}

/* 1: the plain case, features appended; 0: not (take the Python path); -1: an error. */
static int extract(PyObject *datum, PyObject *strings, PyObject *numbers, Features *f) {
    if (!PyList_CheckExact(datum) || PyList_GET_SIZE(datum) != 3) {
        return 0;
    }
    PyObject *string_pairs = PyList_GET_ITEM(datum, 0);
    PyObject *number_pairs = PyList_GET_ITEM(datum, 1);
    PyObject *binary_pairs = PyList_GET_ITEM(datum, 2);
    if (!PyList_CheckExact(string_pairs) || !PyList_CheckExact(number_pairs) ||
        !PyList_CheckExact(binary_pairs)) {
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(string_pairs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(string_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *key = PyList_GET_ITEM(pair, 0);
        PyObject *value = PyList_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) {
            return 0;
        }
        int ready = append_string(strings, key, value, f);
        if (ready <= 0) {
            return ready;
        }
    }
    n = PyList_GET_SIZE(binary_pairs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(binary_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2 ||
            !PyBytes_CheckExact(PyList_GET_ITEM(pair, 0)) ||
            !PyBytes_CheckExact(PyList_GET_ITEM(pair, 1))) {
            return 0;
        }
    }
    n = PyList_GET_SIZE(number_pairs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(number_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *key = PyList_GET_ITEM(pair, 0);
        PyObject *number = PyList_GET_ITEM(pair, 1);
        double value;
        if (PyFloat_CheckExact(number)) {
            value = PyFloat_AS_DOUBLE(number);
        } else if (PyLong_CheckExact(number)) {
            value = PyLong_AsDouble(number);
            if (value == -1.0 && PyErr_Occurred()) {
                PyErr_Clear(); /* too large: the Python path says so */
                return 0;
            }
        } else {
            return 0;
        }
        if (!PyBytes_CheckExact(key)) {
            return 0;
        }
        int ready = append_number(numbers, key, value, f);
        if (ready <= 0) {
            return ready;
        }
    }
    return 1;
}

/* Equal names: the same object, or the same hash and text. -1 on an error. */
static int same_name(PyObject *a, PyObject *b) {
    if (a == b) {
        return 1;
    }
    Py_hash_t ha = PyObject_Hash(a), hb = PyObject_Hash(b);
    if (ha == -1 || hb == -1) {
        return -1;
    }
    if (ha != hb) {
        return 0;
    }
    return PyUnicode_Compare(a, b) == 0;
}

/* weigh(): 0 values left out, a repeated name's values summed at its first place (from
 * 0.0, as a dict of sums has it). 1: done; 0: a value is not finite (the Python path);
 * -1: an error. */
static int merge(Features *f) {
    Py_ssize_t kept = 0;
    if (f->count <= PAIRWISE_FEATURES) {
        for (Py_ssize_t i = 0; i < f->count; i++) {
            double value = f->values[i];
            if (!isfinite(value)) {
                return 0;
            }
            if (value == 0.0) {
                continue;
            }
            Py_ssize_t j;
            for (j = 0; j < kept; j++) {
                int same = same_name(f->names[j], f->names[i]);
                if (same < 0) {
                    return -1;
                }
                if (same) {
                    break;
                }
            }
            if (j < kept) {
                f->values[j] += value;
            } else {
                f->names[kept] = f->names[i];
                f->values[kept] = 0.0 + value;
                kept++;
            }
        }
    } else {
        PyObject *places = PyDict_New();
        if (places == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < f->count; i++) {
            double value = f->values[i];
            if (!isfinite(value)) {
                Py_DECREF(places);
                return 0;
            }
            if (value == 0.0) {
                continue;
            }
            PyObject *place = PyDict_GetItemWithError(places, f->names[i]);
            if (place != NULL) {
                f->values[PyLong_AsSsize_t(place)] += value;
                continue;
            }
            if (PyErr_Occurred()) {
                Py_DECREF(places);
                return -1;
            }
            PyObject *number = PyLong_FromSsize_t(kept);
            if (number == NULL || PyDict_SetItem(places, f->names[i], number) < 0) {
                Py_XDECREF(number);
                Py_DECREF(places);
                return -1;
            }
            Py_DECREF(number);
            f->names[kept] = f->names[i];
            f->values[kept] = 0.0 + value;
            kept++;
        }
        Py_DECREF(places);
    }
    f->count = kept;
    return 1;
}

typedef struct {
    PyObject *ids;      /* borrowed from the replica's index */
    Py_ssize_t rows;
    const double *weights;
    Py_ssize_t weight_count;
    Py_ssize_t stride;
    Py_ssize_t *slots;
    Py_ssize_t labels;
    PyObject *label_names; /* the order_labels list */
} Copy;

/* Each label's score of one datum's merged features, into totals; -1 with an error set. */
static int sum_scores(const Copy *copy, const Features *f, double *totals) {
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        totals[s] = 0.0;
    }
    for (Py_ssize_t i = 0; i < f->count; i++) {
        PyObject *id = PyDict_GetItemWithError(copy->ids, f->names[i]);
        Py_ssize_t row = 0;
        if (id != NULL) {
            row = PyLong_AsSsize_t(id);
            if (row == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (row >= copy->rows || row < 0) { /* named since this copy was made */
                row = 0;
            }
        } else if (PyErr_Occurred()) {
            return -1;
        }
        Py_ssize_t base = row * copy->stride;
        double value = f->values[i];
        for (Py_ssize_t s = 0; s < copy->labels; s++) {
            Py_ssize_t at = base + copy->slots[s];
            if (at >= copy->weight_count) {
                PyErr_SetString(PyExc_IndexError, "weight index out of range");
                return -1;
            }
            totals[s] += copy->weights[at] * value;
        }
    }
    return 0;
}

/* [(label, score)...] of one datum's merged features, or NULL with an error set. */
static PyObject *score(const Copy *copy, const Features *f, double *totals) {
    if (sum_scores(copy, f, totals) < 0) {
        return NULL;
    }
    PyObject *out = PyList_New(copy->labels);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        PyObject *score = PyFloat_FromDouble(totals[s]);
        if (score == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *label = PyList_GET_ITEM(copy->label_names, s);
        PyObject *pair = PyTuple_Pack(2, label, score);
        Py_DECREF(score);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, s, pair);
    }
    return out;
}

/* A new reference to replica.<a>.<b> (b may be NULL). */
static PyObject *attribute(PyObject *obj, PyObject *a, PyObject *b) {
    PyObject *value = PyObject_GetAttr(obj, a);
    if (value == NULL || b == NULL) {
        return value;
    }
    PyObject *inner = PyObject_GetAttr(value, b);
    Py_DECREF(value);
    return inner;
}

/* What a scoring call holds of a copy: its references, its weights' buffer, the slots. */
typedef struct {
    PyObject *refs[6]; /* ids, rows, W, stride, order_slots, order_labels */
    Py_buffer view;
    Py_ssize_t *slot_numbers;
    double *totals;
    Copy copy;
} OpenCopy;

static void copy_close(OpenCopy *open) {
    if (open->view.obj != NULL) {
        PyBuffer_Release(&open->view);
    }
    PyMem_Free(open->slot_numbers);
    PyMem_Free(open->totals);
    for (int i = 0; i < 6; i++) {
        Py_CLEAR(open->refs[i]);
    }
}

/* Reads what scoring needs of a replica; 1: ready, 0: not the plain case, -1: an error.
 * For wire datums, a copy the writer has retired, or one that needs the whole converter,
 * is not the plain case. copy_close() in every case. */
static int copy_open(PyObject *replica, int wire, OpenCopy *open) {
    memset(open, 0, sizeof(*open));
    if (wire) {
        PyObject *retired = PyObject_GetAttr(replica, s_retired);
        if (retired == NULL) {
            return -1;
        }
        int is_retired = PyObject_IsTrue(retired);
        Py_DECREF(retired);
        if (is_retired != 0) {
            return is_retired < 0 ? -1 : 0;
        }
        PyObject *full = PyObject_GetAttr(replica, s_full);
        if (full == NULL) {
            return -1;
        }
        Py_DECREF(full);
        if (full != Py_None) {
            return 0;
        }
    }
    PyObject **refs = open->refs;
    refs[0] = attribute(replica, s_index, s_ids);
    refs[1] = attribute(replica, s_rows, NULL);
    refs[2] = attribute(replica, s_arrays, s_W);
    refs[3] = attribute(replica, s_arrays, s_stride);
    refs[4] = attribute(replica, s_order_slots, NULL);
    refs[5] = attribute(replica, s_order_labels, NULL);
    for (int i = 0; i < 6; i++) {
        if (refs[i] == NULL) {
            return -1;
        }
    }
    PyObject *ids = refs[0], *slots = refs[4], *labels = refs[5];
    if (!PyDict_Check(ids) || !PyList_CheckExact(slots) || !PyList_CheckExact(labels) ||
        PyList_GET_SIZE(slots) != PyList_GET_SIZE(labels)) {
        return 0;
    }
    Copy *copy = &open->copy;
    copy->ids = ids;
    copy->rows = PyLong_AsSsize_t(refs[1]);
    copy->stride = PyLong_AsSsize_t(refs[3]);
    if ((copy->rows == -1 || copy->stride == -1) && PyErr_Occurred()) {
        return -1;
    }
    copy->labels = PyList_GET_SIZE(labels);
    copy->label_names = labels;
    if (PyObject_GetBuffer(refs[2], &open->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (open->view.format == NULL || strcmp(open->view.format, "d") != 0) {
        return 0;
    }
    copy->weights = (const double *)open->view.buf;
    copy->weight_count = open->view.len / (Py_ssize_t)sizeof(double);
    open->slot_numbers = PyMem_New(Py_ssize_t, copy->labels + 1);
    open->totals = PyMem_New(double, copy->labels + 1);
    if (open->slot_numbers == NULL || open->totals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        PyObject *slot = PyList_GET_ITEM(slots, s);
        if (!PyLong_CheckExact(slot)) {
            return 0;
        }
        Py_ssize_t number = PyLong_AsSsize_t(slot);
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (number < 0 || number >= copy->stride) {
            return 0;
        }
        open->slot_numbers[s] = number;
    }
    copy->slots = open->slot_numbers;
    return 1;
}

/* Reads one item into the features; 1: the plain case, 0: not (None), -1: an error. */
typedef int (*Fill)(PyObject *item, void *context, Features *f);

/* [[(label, score)...] per item] of `items` (a list) against `replica`, each item read by
 * `fill`; None (the Python path) where an item or the copy is not the plain case. With
 * `wire`, a copy the writer has retired, or one needing the whole converter, is not. */
static PyObject *score_each(PyObject *items, PyObject *replica, int wire, Fill fill,
                            void *context) {
    OpenCopy open;
    PyObject *out = NULL;
    Features f;
    features_init(&f);
    int ready = copy_open(replica, wire, &open);
    if (ready > 0) {
        Py_ssize_t count = PyList_GET_SIZE(items);
        out = PyList_New(count);
        ready = out == NULL ? -1 : 1;
        for (Py_ssize_t i = 0; ready > 0 && i < count; i++) {
            f.count = 0;
            ready = fill(PyList_GET_ITEM(items, i), context, &f);
            if (ready > 0) {
                PyObject *scores = score(&open.copy, &f, open.totals);
                if (scores == NULL) {
                    ready = -1;
                } else {
                    PyList_SET_ITEM(out, i, scores);
                }
            }
        }
    }
    copy_close(&open);
    features_free(&f);
    if (ready <= 0) {
        Py_CLEAR(out);
        if (ready == 0) {
            out = Py_NewRef(Py_None);
        }
    }
    return out;
}

/* The converter's caches a wire datum is read with. */
typedef struct {
    PyObject *strings, *numbers;
} Caches;

/* What every request of a classify_frames call must name, and what it reads with. */
typedef struct {
    PyObject *method, *cluster; /* bytes */
    uint64_t msgid_limit;
    Caches caches;
} FrameCall;

static int fill_wire(PyObject *datum, void *context, Features *f) {
    Caches *caches = (Caches *)context;
    int ready = extract(datum, caches->strings, caches->numbers, f);
    return ready > 0 ? merge(f) : ready;
}

/* classify_wire(data, strings, numbers, replica) -> list | None
 *
 * The scores of classify's wire argument against one copy of a linear classifier's
 * model, as engines.classifier.model does in Python: each label's score summed from 0.0
 * in the datum's feature order, a feature twice in a datum has its values summed first (at
 * its first place) and a 0 value is left out, as weigh() does. None for a datum not well
 * formed, a string pair or number key the converter's caches do not hold yet, a value that
 * is not finite, a copy being replaced (retired: the writer changes a copy only after it
 * has retired it, which is checked first) or one that needs the whole converter.
 *
 * The published copy is read without registering as a reader: the one write it may see
 * (train_known into the published copy, which declines while a reader is registered)
 * cannot run during this call, which holds the GIL throughout and runs no Python code
 * (the garbage collector is off: no finalizer runs). */
PyObject *classify_wire(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "classify_wire(data, strings, numbers, replica)");
        return NULL;
    }
    PyObject *data = args[0];
    Caches caches = {args[1], args[2]};
    if (!PyList_CheckExact(data) || !PyDict_Check(caches.strings) ||
        !PyDict_Check(caches.numbers)) {
        Py_RETURN_NONE;
    }
    int collecting = PyGC_Disable();
    PyObject *out = score_each(data, args[3], 1, fill_wire, &caches);
    if (collecting) {
        PyGC_Enable();
    }
    return out;
}

/* A weighed vector: (names, values) lists of str and finite floats. */
static int fill_vector(PyObject *vector, void *context, Features *f) {
    (void)context;
    if (!PyTuple_CheckExact(vector) || PyTuple_GET_SIZE(vector) != 2) {
        return 0;
    }
    PyObject *names = PyTuple_GET_ITEM(vector, 0), *values = PyTuple_GET_ITEM(vector, 1);
    if (!PyList_CheckExact(names) || !PyList_CheckExact(values) ||
        PyList_GET_SIZE(names) != PyList_GET_SIZE(values)) {
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(names);
    if (features_reserve(f, n) < 0) {
        return -1;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *name = PyList_GET_ITEM(names, j), *value = PyList_GET_ITEM(values, j);
        if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(value) ||
            !isfinite(PyFloat_AS_DOUBLE(value))) {
            return 0;
        }
        f->names[j] = name;
        f->values[j] = PyFloat_AS_DOUBLE(value);
    }
    f->count = n;
    return 1;
}

/* score_vectors(vectors, replica) -> list | None: Replica.score's sums of weighed vectors
 * ((names, values) pairs, as weigh() gives them) against replica, read by a caller that
 * holds it (no retired check); None for a value that is not finite or an odd input. */
PyObject *score_vectors(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "score_vectors(vectors, replica)");
        return NULL;
    }
    if (!PyList_CheckExact(args[0])) {
        Py_RETURN_NONE;
    }
    return score_each(args[0], args[1], 0, fill_vector, NULL);
}

/* Merged features made the vector train learns: sorted by name, each with its value; 1, or
 * 0 when a value or the squared norm (summed in the merged order) is not finite, or -1. */
static int sort_features(Features *f) {
    double norm = 0.0;
    for (Py_ssize_t i = 0; i < f->count; i++) {
        if (!isfinite(f->values[i])) {
            return 0;
        }
        norm += f->values[i] * f->values[i];
    }
    if (!isfinite(norm)) {
        return 0;
    }
    /* The names in name order, carrying their places; then the values put in that order. */
    PyObject **spare_names = PyMem_New(PyObject *, f->count + 1);
    Py_ssize_t *places = PyMem_New(Py_ssize_t, 2 * f->count + 1);
    double *sorted = PyMem_New(double, f->count + 1);
    if (spare_names == NULL || places == NULL || sorted == NULL) {
        PyMem_Free(spare_names);
        PyMem_Free(places);
        PyMem_Free(sorted);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < f->count; i++) {
        places[i] = i;
    }
    sort_by_name(f->names, places, f->count, spare_names, places + f->count);
    for (Py_ssize_t i = 0; i < f->count; i++) {
        sorted[i] = f->values[places[i]];
    }
    memcpy(f->values, sorted, f->count * sizeof(double));
    PyMem_Free(spare_names);
    PyMem_Free(places);
    PyMem_Free(sorted);
    return 1;
}

/* The vector train_vector makes, in f: its names sorted by name (all distinct), each with
 * its value. 1, or 0 when the Python must make it, or -1 with an error set. */
static int sorted_vector(PyObject *datum, PyObject *strings, PyObject *numbers, Features *f) {
    int ready = extract(datum, strings, numbers, f);
    if (ready > 0) {
        ready = merge(f);
    }
    return ready > 0 ? sort_features(f) : ready;
}

/* train_vector(datum, strings, numbers) -> (names, values) | None
 *
 * The vector a linear classifier learns from one wire datum, as ClassifierModel's Python
 * makes it for a converter that weighs nothing by idf: extracted from the converter's
 * caches, merged as weigh() merges (a 0 value left out, a repeated name summed at its first
 * place), then sorted by name (Jubatus sorts a training vector). None where the Python
 * must take it: a datum classify_wire would not take, a merged value or the squared norm
 * (summed in the merged order) that is not finite. */
PyObject *train_vector(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "train_vector(datum, strings, numbers)");
        return NULL;
    }
    if (!PyDict_Check(args[1]) || !PyDict_Check(args[2])) {
        Py_RETURN_NONE;
    }
    Features f;
    features_init(&f);
    PyObject *out = NULL;
    int ready = sorted_vector(args[0], args[1], args[2], &f);
    if (ready > 0) {
        PyObject *names = PyList_New(f.count), *values = PyList_New(f.count);
        if (names == NULL || values == NULL) {
            ready = -1;
        }
        for (Py_ssize_t i = 0; ready > 0 && i < f.count; i++) {
            PyObject *value = PyFloat_FromDouble(f.values[i]);
            if (value == NULL) {
                ready = -1;
                break;
            }
            PyList_SET_ITEM(names, i, Py_NewRef(f.names[i]));
            PyList_SET_ITEM(values, i, value);
        }
        if (ready > 0) {
            out = PyTuple_Pack(2, names, values);
        }
        Py_XDECREF(names);
        Py_XDECREF(values);
    }
    features_free(&f);
    if (ready == 0) {
        Py_RETURN_NONE;
    }
    return out;
}

/* train_known(datum, strings, numbers, method, c, extra, replica, label, dirty, readers)
 * -> bool or None: train_vector's vector of the datum learnt at once (learn_known), with no
 * list made between; None, having changed nothing, where either would answer None. The
 * label is text, or its wire bytes (decoded here: None for empty or invalid UTF-8).
 *
 * ``readers`` (None, or the dict of the threads reading a copy) is for a replica that
 * readers may see, the published one: then it answers None, having changed nothing, while
 * the dict is not empty, and runs with the garbage collector off, so that no finalizer
 * runs Python code, and so no other thread, before the example is whole. */
PyObject *train_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError,
                        "train_known(datum, strings, numbers, method, c, extra, replica, label, "
                        "dirty, readers)");
        return NULL;
    }
    long method = PyLong_AsLong(args[3]);
    double c = PyFloat_AsDouble(args[4]);
    double extra = PyFloat_AsDouble(args[5]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *readers = args[9];
    if (!PyDict_Check(args[1]) || !PyDict_Check(args[2]) ||
        (readers != Py_None && !PyDict_Check(readers))) {
        Py_RETURN_NONE;
    }
    /* The collector off before the readers are looked at: from here to the end no Python
     * code runs, so no reader can register between the look and the last change. */
    int collecting = readers != Py_None ? PyGC_Disable() : 0;
    PyObject *label = args[7], *decoded = NULL;
    if (readers != Py_None && PyDict_GET_SIZE(readers) > 0) {
        label = NULL;
    } else if (PyBytes_CheckExact(label)) {
        if (PyBytes_GET_SIZE(label) == 0) {
            label = NULL;
        } else {
            decoded = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(label), PyBytes_GET_SIZE(label),
                                           NULL);
            if (decoded == NULL) {
                PyErr_Clear();
            }
            label = decoded;
        }
    }
    if (label == NULL) {
        if (collecting) {
            PyGC_Enable();
        }
        Py_RETURN_NONE;
    }
    Features f;
    features_init(&f);
    PyObject *out = NULL;
    int ready = sorted_vector(args[0], args[1], args[2], &f);
    if (ready > 0) {
        out = learn_vector(method, c, extra, args[6], label, f.names, f.values, f.count, args[8],
                           NULL);
    }
    features_free(&f);
    if (collecting) {
        PyGC_Enable();
    }
    Py_XDECREF(decoded);
    if (ready == 0) {
        Py_RETURN_NONE;
    }
    return out;
}

/* -- whole requests ------------------------------------------------------------------- */

/* A raw value (str or bin) read as a new bytes object; NULL with no error when the cursor
 * is not at one. */
static PyObject *read_bytes(Cursor *c) {
    const char *text;
    Py_ssize_t size;
    if (!read_raw(c, &text, &size)) {
        return NULL;
    }
    return PyBytes_FromStringAndSize(text, size);
}

/* The start of a pair, [key, value]: the key as a new bytes object; NULL (an error set
 * only if memory ran out) when the cursor is not at a pair of a raw key. */
static PyObject *read_pair_key(Cursor *c) {
    Py_ssize_t size;
    if (!read_array(c, &size) || size != 2) {
        return NULL;
    }
    return read_bytes(c);
}

/* A raw value equal to `expected` (bytes): 1, else 0. */
static int read_equal(Cursor *c, PyObject *expected) {
    const char *text;
    Py_ssize_t size;
    return read_raw(c, &text, &size) && size == PyBytes_GET_SIZE(expected) &&
           memcmp(text, PyBytes_AS_STRING(expected), size) == 0;
}

/* A cluster name equal to `expected` (bytes), or any in UTF-8 when it is None (what
 * train at once takes): 1, else 0. */
static int read_name(Cursor *c, PyObject *expected) {
    if (expected != Py_None) {
        return read_equal(c, expected);
    }
    const char *text;
    Py_ssize_t size;
    if (!read_raw(c, &text, &size)) {
        return 0;
    }
    PyObject *name = PyUnicode_DecodeUTF8(text, size, NULL);
    if (name == NULL) {
        PyErr_Clear(); /* not UTF-8: the Python path says so */
        return 0;
    }
    Py_DECREF(name);
    return 1;
}

/* extract() of a datum read from the request's bytes: the same features, or 0 where
 * extract would answer 0, or where the bytes end early. */
static int extract_frame(Cursor *c, const Caches *caches, Features *f) {
    Py_ssize_t parts, n;
    if (!read_array(c, &parts) || parts != 3 || !read_array(c, &n)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = read_pair_key(c);
        PyObject *value = key == NULL ? NULL : read_bytes(c);
        int ready = value == NULL ? 0 : append_string(caches->strings, key, value, f);
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (ready <= 0) {
            return PyErr_Occurred() ? -1 : 0;
        }
    }
    if (!read_array(c, &n)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double number;
        PyObject *key = read_pair_key(c);
        int ready = key != NULL && read_number(c, &number)
                        ? append_number(caches->numbers, key, number, f)
                        : 0;
        Py_XDECREF(key);
        if (ready <= 0) {
            return PyErr_Occurred() ? -1 : 0;
        }
    }
    if (!read_array(c, &n)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        const char *text;
        if (!read_array(c, &size) || size != 2 || !read_raw(c, &text, &size) ||
            !read_raw(c, &text, &size)) {
            return 0;
        }
    }
    return 1;
}

/* What a classifier_frames call answers with. */
typedef struct {
    PyObject *cluster; /* bytes, or None (then classify is not taken) */
    uint64_t msgid_limit;
    Caches caches;
    OpenCopy *classify; /* the copy classify reads, or NULL: classify is not taken */
    /* train, when taken: learnt at once into `learner`, the rows changed added to `dirty`. */
    int train;
    long method;
    double c, extra;
    PyObject *learner, *dirty;
    Py_ssize_t trained;
    uint64_t broken; /* the msgid of a train that failed part way (answer_train's -2) */
} Frames;

/* The rest of a classify request, [[datum...]] after the cluster name, answered. */
static int answer_classify(Cursor *c, Frames *fr, uint64_t msgid, Features *f, Writer *w) {
    Py_ssize_t datums;
    if (!read_array(c, &datums)) {
        return 0;
    }
    write_array(w, 4);
    write_unsigned(w, 1);
    write_unsigned(w, msgid);
    write_nil(w);
    write_array(w, datums);
    const Copy *copy = &fr->classify->copy;
    double *totals = fr->classify->totals;
    for (Py_ssize_t i = 0; i < datums; i++) {
        f->count = 0;
        int ready = extract_frame(c, &fr->caches, f);
        if (ready > 0) {
            ready = merge(f);
        }
        if (ready <= 0) {
            return ready;
        }
        if (sum_scores(copy, f, totals) < 0) {
            return -1;
        }
        write_array(w, copy->labels);
        for (Py_ssize_t s = 0; s < copy->labels; s++) {
            write_array(w, 2);
            if (write_text(w, PyList_GET_ITEM(copy->label_names, s)) < 0) {
                return -1;
            }
            write_double(w, totals[s]);
        }
        if (w->failed) {
            return PyErr_Occurred() ? -1 : 0;
        }
    }
    return w->failed ? (PyErr_Occurred() ? -1 : 0) : 1; /* (a request of no datums) */
}

/* The rest of a train request of one example, [[label, datum]] after the cluster name,
 * learnt at once as train_known learns it and answered 1. -2: an error once the example
 * was partly learnt (its msgid in fr->broken, the cursor at the request's end: the datum
 * is its last value). */
static int answer_train(Cursor *c, Frames *fr, uint64_t msgid, Features *f, Writer *w) {
    Py_ssize_t size;
    if (!read_array(c, &size) || size != 1 || !read_array(c, &size) || size != 2) {
        return 0;
    }
    const char *text;
    if (!read_raw(c, &text, &size) || size == 0) {
        return 0;
    }
    /* Room for the answer ([1, msgid, nil, 1]: at most 13 bytes) made before any learning. */
    int room = writer_room(w, 16);
    if (room <= 0) {
        return room;
    }
    PyObject *label = PyUnicode_DecodeUTF8(text, size, NULL);
    if (label == NULL) {
        PyErr_Clear(); /* not UTF-8: the Python path says so */
        return 0;
    }
    f->count = 0;
    int ready = extract_frame(c, &fr->caches, f);
    if (ready > 0) {
        ready = merge(f);
    }
    if (ready > 0) {
        ready = sort_features(f);
    }
    if (ready > 0) {
        int started = 0;
        PyObject *learnt = learn_vector(fr->method, fr->c, fr->extra, fr->learner, label,
                                        f->names, f->values, f->count, fr->dirty, &started);
        if (learnt == NULL) {
            ready = started ? -2 : -1;
            fr->broken = msgid;
        } else {
            ready = learnt != Py_None;
            Py_DECREF(learnt);
        }
    }
    Py_DECREF(label);
    if (ready <= 0) {
        return ready;
    }
    fr->trained++;
    write_array(w, 4);
    write_unsigned(w, 1);
    write_unsigned(w, msgid);
    write_nil(w);
    write_unsigned(w, 1);
    return 1;
}

/* One request answered into the writer: 1, or 0 (not one this call takes), or -1 with an
 * error set, or -2 (answer_train). */
static int answer_frame(Cursor *c, Frames *fr, Features *f, Writer *w) {
    Py_ssize_t size;
    uint64_t kind, msgid;
    const char *method;
    Py_ssize_t method_size;
    if (!read_array(c, &size) || size != 4 || !read_unsigned(c, &kind) || kind != 0 ||
        !read_unsigned(c, &msgid) || msgid >= fr->msgid_limit ||
        !read_raw(c, &method, &method_size) || !read_array(c, &size) || size != 2) {
        return 0;
    }
    if (fr->classify != NULL && method_size == 8 && memcmp(method, "classify", 8) == 0) {
        return read_equal(c, fr->cluster) ? answer_classify(c, fr, msgid, f, w) : 0;
    }
    if (fr->train && method_size == 5 && memcmp(method, "train", 5) == 0) {
        return read_name(c, fr->cluster) ? answer_train(c, fr, msgid, f, w) : 0;
    }
    return 0;
}

/* classifier_frames(data, cluster, msgid_limit, max_count, max_reply, strings, numbers,
 *                   replica, train) -> (replies, count, consumed, trained, failed) | None
 *
 * The whole requests `data` starts with, answered in order while each is a call from
 * `cluster` (bytes, as sent; None: a train from any cluster name in UTF-8, as train at
 * once takes it, and no classify) with a msgid under msgid_limit, of classify (when `replica`,
 * the published copy classify_wire would read, is not None) with an argument
 * classify_wire takes, or of train (when `train` is not None) with one example
 * train_known would learn at once: up to max_count requests and max_reply bytes of
 * replies. `train` is (method, c, extra, learner, dirty, readers) as train_known takes
 * them; no train is learnt while `readers` is not empty.
 *
 * Answers the replies, packed as msgpack's Packer(use_bin_type=False) packs
 * [1, msgid, nil, result] (classify_wire's result, or 1 for a train), the number of
 * requests answered, the bytes they took and the examples learnt; None when it answers
 * none and learnt nothing. It changes nothing for a request it does not answer, with one
 * exception: a train whose learning fails once begun (a step's arithmetic, or memory)
 * stops the call there, its example partly learnt: that request is counted in the bytes
 * taken but not answered, and `failed` is (msgid, error) for it (None otherwise), for the
 * caller to answer as the usual path answers a train that raised. Another error before
 * the first request is answered is raised; after it, the call stops there (the usual path
 * meets it again).
 *
 * As classify_wire it reads the published copy without registering as a reader, and the
 * garbage collector is off: no Python code runs, so nothing it reads changes meanwhile. */
PyObject *classifier_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "classifier_frames(data, cluster, msgid_limit, max_count, max_reply, "
                        "strings, numbers, replica, train)");
        return NULL;
    }
    Frames fr = {0};
    fr.cluster = args[1];
    fr.caches.strings = args[5];
    fr.caches.numbers = args[6];
    PyObject *replica = args[7], *train = args[8];
    if (!PyBytes_CheckExact(args[0]) ||
        (!PyBytes_CheckExact(fr.cluster) && (fr.cluster != Py_None || replica != Py_None)) ||
        !PyDict_Check(fr.caches.strings) || !PyDict_Check(fr.caches.numbers) ||
        (train != Py_None && (!PyTuple_CheckExact(train) || PyTuple_GET_SIZE(train) != 6))) {
        Py_RETURN_NONE;
    }
    fr.msgid_limit = PyLong_AsUnsignedLongLong(args[2]);
    Py_ssize_t max_count = PyLong_AsSsize_t(args[3]);
    Py_ssize_t max_reply = PyLong_AsSsize_t(args[4]);
    if (train != Py_None) {
        fr.method = PyLong_AsLong(PyTuple_GET_ITEM(train, 0));
        fr.c = PyFloat_AsDouble(PyTuple_GET_ITEM(train, 1));
        fr.extra = PyFloat_AsDouble(PyTuple_GET_ITEM(train, 2));
        fr.learner = PyTuple_GET_ITEM(train, 3);
        fr.dirty = PyTuple_GET_ITEM(train, 4);
        PyObject *readers = PyTuple_GET_ITEM(train, 5);
        fr.train = PyDict_Check(readers) && PyDict_GET_SIZE(readers) == 0;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    Cursor c = {(const unsigned char *)PyBytes_AS_STRING(args[0]), NULL};
    c.end = c.at + PyBytes_GET_SIZE(args[0]);
    const unsigned char *begin = c.at;
    int collecting = PyGC_Disable();
    OpenCopy open;
    Features f;
    Writer w;
    features_init(&f);
    writer_init(&w, max_reply);
    int status = 1;
    if (replica != Py_None) {
        status = copy_open(replica, 1, &open);
        fr.classify = status > 0 ? &open : NULL;
    } else {
        memset(&open, 0, sizeof(open));
    }
    Py_ssize_t count = 0;
    PyObject *error = NULL;
    int broken = 0;
    while (status >= 0 && (fr.classify != NULL || fr.train) && c.at < c.end &&
           count < max_count) {
        const unsigned char *start = c.at;
        Py_ssize_t written = w.size;
        int ready = answer_frame(&c, &fr, &f, &w);
        if (ready > 0 && !w.failed) {
            count++;
            continue;
        }
        w.size = written;
        w.failed = 0;
        if (ready == -2) { /* taken, and not to be run again: the caller answers the error */
            broken = 1;
            PyObject *type, *traceback;
            PyErr_Fetch(&type, &error, &traceback);
            PyErr_NormalizeException(&type, &error, &traceback);
            Py_XDECREF(type);
            Py_XDECREF(traceback);
            break;
        }
        c.at = start; /* this request is left to the usual path */
        if (ready < 0 && count > 0) { /* (any train learnt was answered) */
            PyErr_Clear(); /* the usual path meets it again */
        } else if (ready < 0) {
            status = -1;
        }
        break;
    }
    PyObject *out = NULL;
    if (status >= 0 && (count > 0 || broken)) {
        PyObject *failed = broken ? Py_BuildValue("(KO)", (unsigned long long)fr.broken,
                                                  error ? error : Py_None)
                                  : Py_NewRef(Py_None);
        if (failed != NULL) {
            out = Py_BuildValue("(y#nnnN)", (const char *)w.data, w.size, count,
                                (Py_ssize_t)(c.at - begin), fr.trained, failed);
        }
    }
    Py_XDECREF(error);
    copy_close(&open);
    features_free(&f);
    writer_free(&w);
    if (collecting) {
        PyGC_Enable();
    }
    if (out == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return out;
}
