/* The module: its methods and the attribute names the kernels read, made once. */
#include "kernels.h"

PyObject *s_retired, *s_full, *s_index, *s_ids, *s_rows, *s_arrays, *s_W, *s_stride,
    *s_order_slots, *s_order_labels, *s_V, *s_WM, *s_WD, *s_VM, *s_VD;
PyObject *s_idf, *s_idf1, *s_bm25, *s_weight;
PyObject *s_slots, *s_counts, *s_diff_counts, *s_DC, *s_diff_features, *s_all_features,
    *s_trained;

static PyMethodDef methods[] = {
    {"classify_wire", (PyCFunction)(void (*)(void))classify_wire, METH_FASTCALL,
     "Scores of classify's wire argument against a linear classifier's copy, or None."},
    {"classifier_frames", (PyCFunction)(void (*)(void))classifier_frames, METH_FASTCALL,
     "The replies to the whole classify and train requests a read starts with, or None."},
    {"score_vectors", (PyCFunction)(void (*)(void))score_vectors, METH_FASTCALL,
     "Scores of weighed feature vectors against a linear classifier's copy, or None."},
    {"train_vector", (PyCFunction)(void (*)(void))train_vector, METH_FASTCALL,
     "The sorted vector a linear classifier learns from a wire datum, or None."},
    {"train_linear", (PyCFunction)(void (*)(void))train_linear, METH_FASTCALL,
     "One example learnt by a linear method, as engines.common.linear does it."},
    {"learn_known", (PyCFunction)(void (*)(void))learn_known, METH_FASTCALL,
     "One example learnt into a classifier's copy (label and features known), or None."},
    {"train_known", (PyCFunction)(void (*)(void))train_known, METH_FASTCALL,
     "train_vector's vector of a wire datum learnt at once (learn_known), or None."},
    {"project", (PyCFunction)(void (*)(void))project, METH_FASTCALL,
     "Random projection sums and their sign bits (lsh, euclid_lsh)."},
    {"nearest_by_hamming", (PyCFunction)(void (*)(void))nearest_by_hamming, METH_FASTCALL,
     "The rows nearest a bit vector by Hamming distance, ties by position."},
    {"dense_query", (PyCFunction)(void (*)(void))dense_query, METH_FASTCALL,
     "The inverted index's euclid or cosine query over its dense copy."},
    {"postings_query", (PyCFunction)(void (*)(void))postings_query, METH_FASTCALL,
     "The inverted index's euclid or cosine query over its postings."},
    {"nearest_by_euclid_lsh", (PyCFunction)(void (*)(void))nearest_by_euclid_lsh, METH_FASTCALL,
     "euclid_lsh's nearest rows by their estimated distance, ties by position."},
    {"weigh_idf", (PyCFunction)(void (*)(void))weigh_idf, METH_FASTCALL,
     "The converter's global weights (idf, idf1), or None for bm25 and weight."},
    {"sort_and_merge", (PyCFunction)(void (*)(void))sort_and_merge, METH_FASTCALL,
     "Features sorted by name, a name's values summed, or None."},
    {"copy_rows", (PyCFunction)(void (*)(void))copy_rows, METH_FASTCALL,
     "Rows of arrays copied from one copy of a model to the other."},
    {"wire_text_bytes", (PyCFunction)(void (*)(void))wire_text_bytes, METH_FASTCALL,
     "The bytes of text in a wire value (runtime.server.snapshot.wire_text_bytes)."},
    {NULL, NULL, 0, NULL},
};

static int intern_names(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_retired, "retired"},     {&s_full, "full"},   {&s_index, "index"},
        {&s_ids, "ids"},             {&s_rows, "rows"},   {&s_arrays, "arrays"},
        {&s_W, "W"},                 {&s_stride, "stride"}, {&s_order_slots, "order_slots"},
        {&s_order_labels, "order_labels"},
        {&s_V, "V"},                 {&s_WM, "WM"},       {&s_WD, "WD"},
        {&s_VM, "VM"},               {&s_VD, "VD"},
        {&s_idf, "idf"},             {&s_idf1, "idf1"},   {&s_bm25, "bm25"},
        {&s_weight, "weight"},
        {&s_slots, "slots"},         {&s_counts, "counts"},
        {&s_diff_counts, "diff_counts"},
        {&s_DC, "DC"},               {&s_diff_features, "diff_features"},
        {&s_all_features, "all_features"},
        {&s_trained, "trained"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Compiled hot paths; engines.common.kernels loads them, with Python as the fallback.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (intern_names() < 0) {
        return NULL;
    }
    return PyModule_Create(&module);
}
