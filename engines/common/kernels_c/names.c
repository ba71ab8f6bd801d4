/* Features sorted by name, as Python's sorted() orders str: sort_by_name. */
#include "kernels.h"

/* <0, 0, >0 as a sorts before, equal to or after b (both str), in code point order: by
 * memcmp where both hold one byte per character, else as Python compares them. */
int compare_names(PyObject *a, PyObject *b) {
    if (a == b) {
        return 0;
    }
    if (PyUnicode_KIND(a) == PyUnicode_1BYTE_KIND && PyUnicode_KIND(b) == PyUnicode_1BYTE_KIND) {
        Py_ssize_t la = PyUnicode_GET_LENGTH(a), lb = PyUnicode_GET_LENGTH(b);
        int order = memcmp(PyUnicode_1BYTE_DATA(a), PyUnicode_1BYTE_DATA(b), la < lb ? la : lb);
        if (order != 0) {
            return order;
        }
        return la < lb ? -1 : la > lb;
    }
    return PyUnicode_Compare(a, b);
}

/* A stable merge sort of n names, in code point order (the order Python compares str in),
 * with `order` (their first positions, say) moved alongside; through spare room for n of
 * each. Equal names keep their order. */
void sort_by_name(PyObject **names, Py_ssize_t *order, Py_ssize_t n, PyObject **spare_names,
                  Py_ssize_t *spare_order) {
    PyObject **from_names = names, **to_names = spare_names;
    Py_ssize_t *from_order = order, *to_order = spare_order;
    for (Py_ssize_t width = 1; width < n; width *= 2) {
        for (Py_ssize_t low = 0; low < n; low += 2 * width) {
            Py_ssize_t middle = low + width < n ? low + width : n;
            Py_ssize_t high = low + 2 * width < n ? low + 2 * width : n;
            Py_ssize_t i = low, j = middle, k = low;
            while (i < middle && j < high) {
                if (compare_names(from_names[j], from_names[i]) < 0) {
                    to_names[k] = from_names[j];
                    to_order[k++] = from_order[j++];
                } else {
                    to_names[k] = from_names[i];
                    to_order[k++] = from_order[i++];
                }
            }
            while (i < middle) {
                to_names[k] = from_names[i];
                to_order[k++] = from_order[i++];
            }
            while (j < high) {
                to_names[k] = from_names[j];
                to_order[k++] = from_order[j++];
            }
        }
        PyObject **swap_names = from_names;
        from_names = to_names;
        to_names = swap_names;
        Py_ssize_t *swap_order = from_order;
        from_order = to_order;
        to_order = swap_order;
    }
    if (from_names != names) {
        memcpy(names, from_names, n * sizeof(PyObject *));
        memcpy(order, from_order, n * sizeof(Py_ssize_t));
    }
}
