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
    *s_order_slots, *s_order_labels, *s_V, *s_WM, *s_WD, *s_VM, *s_VD;
/* Global weight kinds, the ends of feature names (weights.c). */
extern PyObject *s_idf, *s_idf1, *s_bm25, *s_weight;

/* The kernels (METH_FASTCALL), one file per concern. */
PyObject *classify_wire(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *score_vectors(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *train_linear(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *project(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *nearest_by_hamming(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *nearest_by_euclid_lsh(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *dense_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *postings_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *weigh_idf(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
