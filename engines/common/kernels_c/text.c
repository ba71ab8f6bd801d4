/* The text a wire value holds: wire_text_bytes (runtime/server/snapshot.py's, in C). */
#include "kernels.h"

/* A list or dict waiting to be walked; the stack grows as nesting does. */
typedef struct {
    PyObject **items; /* borrowed: nothing changes them while the GIL is held */
    Py_ssize_t count, capacity;
} Stack;

static int stack_push(Stack *stack, PyObject *container) {
    if (stack->count == stack->capacity) {
        Py_ssize_t capacity = stack->capacity ? stack->capacity * 2 : 16;
        PyObject **items = PyMem_Resize(stack->items, PyObject *, capacity);
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        stack->items = items;
        stack->capacity = capacity;
    }
    stack->items[stack->count++] = container;
    return 0;
}

/* One item of a list, or a key or value of a dict: its text counted, or it is pushed. */
static int walk_item(PyObject *item, Stack *stack, Py_ssize_t *total) {
    if (PyBytes_CheckExact(item)) {
        *total += PyBytes_GET_SIZE(item);
    } else if (PyUnicode_CheckExact(item)) {
        *total += PyUnicode_GET_LENGTH(item);
    } else if (PyList_CheckExact(item) || PyDict_CheckExact(item)) {
        return stack_push(stack, item);
    }
    return 0;
}

/* wire_text_bytes(value) -> int: the bytes of text (bytes and str, a str counted in code
 * points as len() counts it) in value, lists and dicts walked when value is a list. */
PyObject *wire_text_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "wire_text_bytes(value)");
        return NULL;
    }
    PyObject *value = args[0];
    if (PyBytes_CheckExact(value)) {
        return PyLong_FromSsize_t(PyBytes_GET_SIZE(value));
    }
    if (PyUnicode_CheckExact(value)) {
        return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(value));
    }
    if (!PyList_CheckExact(value)) {
        return PyLong_FromLong(0);
    }
    Stack stack = {NULL, 0, 0};
    Py_ssize_t total = 0;
    int failed = stack_push(&stack, value);
    while (!failed && stack.count) {
        PyObject *container = stack.items[--stack.count];
        if (PyList_CheckExact(container)) {
            for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(container); i++) {
                failed = walk_item(PyList_GET_ITEM(container, i), &stack, &total);
            }
        } else {
            Py_ssize_t position = 0;
            PyObject *key, *item;
            while (!failed && PyDict_Next(container, &position, &key, &item)) {
                failed = walk_item(key, &stack, &total) || walk_item(item, &stack, &total);
            }
        }
    }
    PyMem_Free(stack.items);
    return failed ? NULL : PyLong_FromSsize_t(total);
}
