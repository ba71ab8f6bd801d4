/* The `count` best of scored rows offered one by one in row order (Best): the top of a
 * query, with numpy's tie rules. */
#include "kernels.h"

int best_init(Best *best, Py_ssize_t count, int larger_first) {
    best->count = count < 0 ? 0 : count;
    best->kept = 0;
    best->larger_first = larger_first;
    best->scores = PyMem_New(double, best->count + 1);
    best->numbers = PyMem_New(Py_ssize_t, best->count + 1);
    if (best->scores == NULL || best->numbers == NULL) {
        best_free(best);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

void best_free(Best *best) {
    PyMem_Free(best->scores);
    PyMem_Free(best->numbers);
    best->scores = NULL;
    best->numbers = NULL;
}

/* Whether a row offered now (after every row kept) goes before one kept with `kept`: by
 * score, and on a tie the later row first when the larger come first ((score, number)
 * largest first, numpy's reversed lexsort), the earlier one otherwise (smallest first,
 * ties by position). */
static int goes_before(const Best *best, double score, double kept) {
    return best->larger_first ? score >= kept : score < kept;
}

void best_offer(Best *best, double score, Py_ssize_t number) {
    Py_ssize_t count = best->count, kept = best->kept;
    if (count == 0 || (kept == count && !goes_before(best, score, best->scores[kept - 1]))) {
        return;
    }
    Py_ssize_t place = kept < count ? kept : count - 1;
    while (place > 0 && goes_before(best, score, best->scores[place - 1])) {
        best->scores[place] = best->scores[place - 1];
        best->numbers[place] = best->numbers[place - 1];
        place--;
    }
    best->scores[place] = score;
    best->numbers[place] = number;
    if (kept < count) {
        best->kept = kept + 1;
    }
}

PyObject *best_lists(const Best *best, int numbers_first) {
    PyObject *scores = PyList_New(best->kept), *numbers = PyList_New(best->kept);
    if (scores == NULL || numbers == NULL) {
        Py_XDECREF(scores);
        Py_XDECREF(numbers);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < best->kept; k++) {
        PyObject *score = PyFloat_FromDouble(best->scores[k]);
        PyObject *number = PyLong_FromSsize_t(best->numbers[k]);
        if (score == NULL || number == NULL) {
            Py_XDECREF(score);
            Py_XDECREF(number);
            Py_DECREF(scores);
            Py_DECREF(numbers);
            return NULL;
        }
        PyList_SET_ITEM(scores, k, score);
        PyList_SET_ITEM(numbers, k, number);
    }
    PyObject *out = numbers_first ? PyTuple_Pack(2, numbers, scores)
                                  : PyTuple_Pack(2, scores, numbers);
    Py_DECREF(scores);
    Py_DECREF(numbers);
    return out;
}
