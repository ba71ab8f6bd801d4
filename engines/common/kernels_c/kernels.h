/* Compiled hot paths of the engines; engines/common/kernels.py loads this module and says
 * where each kernel serves.
 *
 * Every kernel gives the bits of the Python or numpy it stands in for: the same operations
 * in the same order (the module is built with -ffp-contract=off: no fused multiply-add),
 * the same tie rules. Where a kernel meets a case it does not take (an input not well
 * formed, a cache not filled yet, a value that is not a number), it answers None and the
 * caller runs its Python, which also says what is wrong.
 *
 * The GIL is held throughout every call, and no Python code runs under it (lookups in
 * dicts of str, bytes and tuples of bytes only): what a kernel reads cannot change while
 * it reads. Sizes and indexes are checked before memory is touched.
 */
#ifndef JUBAKO_KERNELS_H
#define JUBAKO_KERNELS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* Attribute names, interned once by the module (module.c). */
extern PyObject *s_retired, *s_full, *s_index, *s_ids, *s_rows, *s_arrays, *s_W, *s_stride,
    *s_order_slots, *s_order_labels, *s_V, *s_WM, *s_WD, *s_VM, *s_VD, *s_slots, *s_counts,
    *s_diff_counts, *s_DC, *s_diff_features, *s_all_features, *s_trained;
/* Global weight kinds, the ends of feature names (weights.c). */
extern PyObject *s_idf, *s_idf1, *s_bm25, *s_weight;

/* The `count` best of rows offered in row order (best.c): scores and row numbers, best
 * first; larger_first picks the largest (a tie to the later row) or else the smallest (a
 * tie to the earlier row). */
typedef struct {
    double *scores;
    Py_ssize_t *numbers;
    Py_ssize_t kept, count;
    int larger_first;
} Best;
int best_init(Best *best, Py_ssize_t count, int larger_first); /* -1: MemoryError */
void best_offer(Best *best, double score, Py_ssize_t number);
PyObject *best_lists(const Best *best, int numbers_first); /* (scores, numbers) or reversed */
void best_free(Best *best);

/* Two str in code point order (<0, 0, >0), and a stable sort of names in that order
 * carrying their positions along (names.c). */
int compare_names(PyObject *a, PyObject *b);
void sort_by_name(PyObject **names, Py_ssize_t *order, Py_ssize_t n, PyObject **spare_names,
                  Py_ssize_t *spare_order);

/* One example learnt into a linear classifier's copy, from a vector sorted by name
 * (linear.c): True or False, None when the copy does not know its label or a feature. With
 * an error raised, *started (when given) says whether the example was partly learnt. */
PyObject *learn_vector(long method, double c, double extra, PyObject *replica, PyObject *label,
                       PyObject *const *names, const double *values, Py_ssize_t count,
                       PyObject *dirty, int *started);

/* MessagePack read from a request's bytes (frames.c): each reader answers 1 with the value
 * and the cursor past it, or 0 (the value is not of that kind, or cut short). */
typedef struct {
    const unsigned char *at, *end;
} Cursor;
int read_array(Cursor *c, Py_ssize_t *count);
int read_unsigned(Cursor *c, uint64_t *value);            /* an integer, not negative */
int read_raw(Cursor *c, const char **text, Py_ssize_t *size); /* str or bin */
int read_number(Cursor *c, double *number);               /* an integer or a float */

/* A reply written as msgpack's Packer(use_bin_type=False) writes it (frames.c), up to
 * `limit` bytes: past it, or out of memory (MemoryError raised), `failed` is set and the
 * rest is not written. */
typedef struct {
    unsigned char *data;
    Py_ssize_t size, capacity, limit;
    int failed;
    unsigned char stack[1024];
} Writer;
void writer_init(Writer *w, Py_ssize_t limit);
void writer_free(Writer *w);
/* Whether `more` bytes can be written, room made for them: 1, 0 (past the limit), or -1. */
int writer_room(Writer *w, Py_ssize_t more);
void write_array(Writer *w, Py_ssize_t count);
void write_unsigned(Writer *w, uint64_t value);
void write_nil(Writer *w);
void write_double(Writer *w, double value);
int write_text(Writer *w, PyObject *text); /* -1: not UTF-8 (an error set) */

/* The kernels (METH_FASTCALL), one file per concern. */
PyObject *classify_wire(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *classifier_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *score_vectors(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *train_vector(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *train_linear(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *learn_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *train_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *wire_text_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *project(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *nearest_by_hamming(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *nearest_by_euclid_lsh(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *dense_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *postings_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *weigh_idf(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *sort_and_merge(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
