/* MessagePack read from a request's bytes and written into a reply's, for the kernels
 * that answer whole requests (classify_frames): what msgpack's Unpacker(raw=True) reads
 * and Packer(use_bin_type=False) writes, for the few kinds of value those kernels meet. */
#include "kernels.h"

#include <string.h>

static uint64_t big_endian(const unsigned char *at, int size) {
    uint64_t value = 0;
    for (int i = 0; i < size; i++) {
        value = (value << 8) | at[i];
    }
    return value;
}

/* The next `size` bytes, or NULL (the cursor unmoved) when fewer are left. */
static const unsigned char *take(Cursor *c, Py_ssize_t size) {
    if (size < 0 || c->end - c->at < size) {
        return NULL;
    }
    const unsigned char *at = c->at;
    c->at += size;
    return at;
}

int read_array(Cursor *c, Py_ssize_t *count) {
    const unsigned char *at = take(c, 1);
    if (at == NULL) {
        return 0;
    }
    unsigned char head = at[0];
    if ((head & 0xf0) == 0x90) {
        *count = head & 0x0f;
        return 1;
    }
    int size = head == 0xdc ? 2 : head == 0xdd ? 4 : 0;
    const unsigned char *length = size ? take(c, size) : NULL;
    if (length == NULL) {
        return 0;
    }
    uint64_t value = big_endian(length, size);
    if (value > (uint64_t)PY_SSIZE_T_MAX) {
        return 0; /* (a 32-bit build) */
    }
    *count = (Py_ssize_t)value;
    return 1;
}

/* An integer of any width: 1 with its value (negative: *negative set), else 0. */
static int read_integer(Cursor *c, uint64_t *value, int *negative) {
    const unsigned char *at = take(c, 1);
    if (at == NULL) {
        return 0;
    }
    unsigned char head = at[0];
    *negative = 0;
    if (head <= 0x7f) {
        *value = head;
        return 1;
    }
    if (head >= 0xe0) {
        *negative = 1;
        *value = (uint64_t)(int64_t)(int8_t)head;
        return 1;
    }
    int size, is_signed;
    if (head >= 0xcc && head <= 0xcf) {
        size = 1 << (head - 0xcc);
        is_signed = 0;
    } else if (head >= 0xd0 && head <= 0xd3) {
        size = 1 << (head - 0xd0);
        is_signed = 1;
    } else {
        return 0;
    }
    const unsigned char *body = take(c, size);
    if (body == NULL) {
        return 0;
    }
    uint64_t raw = big_endian(body, size);
    if (is_signed) {
        int64_t signed_value = size == 1   ? (int8_t)raw
                               : size == 2 ? (int16_t)raw
                               : size == 4 ? (int32_t)raw
                                           : (int64_t)raw;
        *negative = signed_value < 0;
        raw = (uint64_t)signed_value;
    }
    *value = raw;
    return 1;
}

int read_unsigned(Cursor *c, uint64_t *value) {
    int negative;
    return read_integer(c, value, &negative) && !negative;
}

int read_raw(Cursor *c, const char **text, Py_ssize_t *size) {
    const unsigned char *at = take(c, 1);
    if (at == NULL) {
        return 0;
    }
    unsigned char head = at[0];
    Py_ssize_t length;
    if ((head & 0xe0) == 0xa0) {
        length = head & 0x1f;
    } else {
        int width;
        switch (head) {
        case 0xd9: case 0xc4: width = 1; break; /* str 8, bin 8 */
        case 0xda: case 0xc5: width = 2; break;
        case 0xdb: case 0xc6: width = 4; break;
        default: return 0;
        }
        const unsigned char *field = take(c, width);
        if (field == NULL) {
            return 0;
        }
        uint64_t value = big_endian(field, width);
        if (value > (uint64_t)PY_SSIZE_T_MAX) {
            return 0; /* (a 32-bit build) */
        }
        length = (Py_ssize_t)value;
    }
    const unsigned char *body = take(c, length);
    if (body == NULL) {
        return 0;
    }
    *text = (const char *)body;
    *size = length;
    return 1;
}

int read_number(Cursor *c, double *number) {
    if (c->at >= c->end) {
        return 0;
    }
    unsigned char head = c->at[0];
    if (head == 0xca || head == 0xcb) {
        int size = head == 0xca ? 4 : 8;
        c->at++;
        const unsigned char *body = take(c, size);
        if (body == NULL) {
            return 0;
        }
        uint64_t bits = big_endian(body, size);
        if (size == 4) {
            uint32_t narrow = (uint32_t)bits;
            float single;
            memcpy(&single, &narrow, sizeof(single));
            *number = (double)single;
        } else {
            memcpy(number, &bits, sizeof(*number));
        }
        return 1;
    }
    uint64_t value;
    int negative;
    if (!read_integer(c, &value, &negative)) {
        return 0;
    }
    /* A conversion rounded to nearest, as int's __float__ (PyLong_AsDouble) rounds. */
    *number = negative ? (double)(int64_t)value : (double)value;
    return 1;
}

/* -- the reply --------------------------------------------------------------------------- */

void writer_init(Writer *w, Py_ssize_t limit) {
    w->data = w->stack;
    w->size = 0;
    w->capacity = (Py_ssize_t)sizeof(w->stack);
    w->limit = limit;
    w->failed = 0;
}

void writer_free(Writer *w) {
    if (w->data != w->stack) {
        PyMem_Free(w->data);
    }
    w->data = w->stack;
}

/* Room for `more` bytes; NULL (failed set, MemoryError raised if memory ran out) when the
 * reply would pass the limit. */
static unsigned char *room(Writer *w, Py_ssize_t more) {
    if (w->failed) {
        return NULL;
    }
    Py_ssize_t needed = w->size + more;
    if (needed > w->limit) {
        w->failed = 1;
        return NULL;
    }
    if (needed > w->capacity) {
        Py_ssize_t capacity = w->capacity * 2 > needed ? w->capacity * 2 : needed;
        unsigned char *data = PyMem_Malloc(capacity);
        if (data == NULL) {
            w->failed = 1;
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(data, w->data, w->size);
        writer_free(w);
        w->data = data;
        w->capacity = capacity;
    }
    unsigned char *at = w->data + w->size;
    w->size = needed;
    return at;
}

int writer_room(Writer *w, Py_ssize_t more) {
    if (w->failed || w->size + more > w->limit) {
        return 0;
    }
    Py_ssize_t size = w->size;
    if (room(w, more) == NULL) {
        return w->failed && PyErr_Occurred() ? -1 : 0;
    }
    w->size = size;
    return 1;
}

static void put_big_endian(unsigned char *at, uint64_t value, int size) {
    for (int i = size - 1; i >= 0; i--) {
        at[i] = (unsigned char)value;
        value >>= 8;
    }
}

/* A head byte and a big-endian field of `size` bytes. */
static void write_head(Writer *w, unsigned char head, uint64_t field, int size) {
    unsigned char *at = room(w, 1 + size);
    if (at != NULL) {
        at[0] = head;
        put_big_endian(at + 1, field, size);
    }
}

void write_array(Writer *w, Py_ssize_t count) {
    if (count < 16) {
        write_head(w, (unsigned char)(0x90 | count), 0, 0);
    } else if (count < 0x10000) {
        write_head(w, 0xdc, (uint64_t)count, 2);
    } else {
        write_head(w, 0xdd, (uint64_t)count, 4);
    }
}

void write_unsigned(Writer *w, uint64_t value) {
    if (value < 0x80) {
        write_head(w, (unsigned char)value, 0, 0);
    } else if (value < 0x100) {
        write_head(w, 0xcc, value, 1);
    } else if (value < 0x10000) {
        write_head(w, 0xcd, value, 2);
    } else if (value < 0x100000000ULL) {
        write_head(w, 0xce, value, 4);
    } else {
        write_head(w, 0xcf, value, 8);
    }
}

void write_nil(Writer *w) {
    write_head(w, 0xc0, 0, 0);
}

void write_double(Writer *w, double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof(bits));
    write_head(w, 0xcb, bits, 8);
}

int write_text(Writer *w, PyObject *text) {
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        return -1; /* (lone surrogates: the packer refuses them too) */
    }
    if (size < 32) {
        write_head(w, (unsigned char)(0xa0 | size), 0, 0);
    } else if (size < 0x10000) {
        write_head(w, 0xda, (uint64_t)size, 2);
    } else if ((uint64_t)size < 0x100000000ULL) {
        write_head(w, 0xdb, (uint64_t)size, 4);
    } else {
        w->failed = 1;
    }
    unsigned char *at = room(w, size);
    if (at != NULL) {
        memcpy(at, utf8, size);
    }
    return 0;
}
