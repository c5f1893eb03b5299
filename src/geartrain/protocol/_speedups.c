/*
 * Optional accelerator for geartrain.protocol.codec: frames the common case of the byte stream in C.
 *
 * frame(buf, pos, accept, max_size, arg_counts, min_counts, packet_type, out) -> new_pos
 *
 * Starting at `pos`, appends a `packet_type` instance (a tuple subclass: (type, args)) to the list `out` for each
 * complete, well-formed packet with the `accept` magic, a known type, a size within `max_size` and enough
 * arguments. It stops at the first item it does not handle (an admin line, another magic, an unknown type, an
 * oversized or short packet) or at an incomplete one, and returns that item's position: the pure-Python decoder
 * handles it, so every error keeps exactly one implementation. `arg_counts[t]` / `min_counts[t]` give, per type,
 * how many arguments the body splits into and how few are accepted (bytes objects indexed by type).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define HEADER_SIZE 12

static inline uint32_t read_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* A new instance of the tuple subclass `type` holding (ptype, args); steals both references. */
static PyObject *make_packet(PyTypeObject *type, PyObject *ptype, PyObject *args) {
    PyObject *packet = type->tp_alloc(type, 2);
    if (packet == NULL) {
        Py_DECREF(ptype);
        Py_DECREF(args);
        return NULL;
    }
    PyTuple_SET_ITEM(packet, 0, ptype);
    PyTuple_SET_ITEM(packet, 1, args);
    return packet;
}

/* The body split at its first count-1 NULs (fewer if it has fewer); NULL with no error set if under `min`. */
static PyObject *split_body(const char *body, Py_ssize_t size, int count, int min) {
    if (count == 0) {
        return PyTuple_New(0);
    }
    const char *starts[64];
    Py_ssize_t lengths[64];
    int found = 0;
    const char *cursor = body;
    const char *end = body + size;
    while (found < count - 1) {
        const char *nul = memchr(cursor, 0, (size_t)(end - cursor));
        if (nul == NULL) {
            break;
        }
        starts[found] = cursor;
        lengths[found] = nul - cursor;
        found++;
        cursor = nul + 1;
    }
    starts[found] = cursor;
    lengths[found] = end - cursor;
    found++;
    if (found < count && found < min) {
        return NULL;
    }
    PyObject *args = PyTuple_New(found);
    if (args == NULL) {
        return NULL;
    }
    for (int i = 0; i < found; i++) {
        PyObject *arg = PyBytes_FromStringAndSize(starts[i], lengths[i]);
        if (arg == NULL) {
            Py_DECREF(args);
            return NULL;
        }
        PyTuple_SET_ITEM(args, i, arg);
    }
    return args;
}

static PyObject *frame(PyObject *module, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 8) {
        PyErr_SetString(PyExc_TypeError, "frame() takes 8 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(argv[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_buffer accept = {0}, counts = {0}, mins = {0};
    Py_ssize_t pos = PyLong_AsSsize_t(argv[1]);
    unsigned long long max_size = PyLong_AsUnsignedLongLong(argv[3]);
    PyObject *packet_type = argv[6];
    PyObject *out = argv[7];
    if (PyErr_Occurred()) {
        goto done;
    }
    if (!PyType_Check(packet_type) || !PyType_IsSubtype((PyTypeObject *)packet_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "packet_type must be a tuple subclass");
        goto done;
    }
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        goto done;
    }
    if (PyObject_GetBuffer(argv[2], &accept, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(argv[4], &counts, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(argv[5], &mins, PyBUF_SIMPLE) < 0) {
        goto done;
    }
    if (accept.len != 4 || counts.len != mins.len) {
        PyErr_SetString(PyExc_ValueError, "bad magic or argument count tables");
        goto done;
    }
    const unsigned char *data = view.buf;
    Py_ssize_t length = view.len;
    const unsigned char *count_table = counts.buf;
    const unsigned char *min_table = mins.buf;
    Py_ssize_t max_type = counts.len - 1;
    if (pos < 0) {
        pos = 0;
    }
    while (length - pos >= HEADER_SIZE) {
        const unsigned char *header = data + pos;
        if (memcmp(header, accept.buf, 4) != 0) {
            break; /* admin text, the other magic, or garbage: Python decides */
        }
        uint32_t ptype = read_be32(header + 4);
        uint32_t size = read_be32(header + 8);
        if (ptype == 0 || (Py_ssize_t)ptype > max_type || (unsigned long long)size > max_size) {
            break;
        }
        if ((Py_ssize_t)size > length - pos - HEADER_SIZE) {
            break; /* incomplete */
        }
        int count = count_table[ptype];
        if (count > 64) {
            break;
        }
        PyObject *args = split_body((const char *)header + HEADER_SIZE, (Py_ssize_t)size, count, min_table[ptype]);
        if (args == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            break; /* too few arguments: Python reports it */
        }
        PyObject *number = PyLong_FromUnsignedLong(ptype);
        if (number == NULL) {
            Py_DECREF(args);
            goto done;
        }
        PyObject *packet = make_packet((PyTypeObject *)packet_type, number, args);
        if (packet == NULL) {
            goto done;
        }
        int failed = PyList_Append(out, packet);
        Py_DECREF(packet);
        if (failed) {
            goto done;
        }
        pos += HEADER_SIZE + (Py_ssize_t)size;
    }
    result = PyLong_FromSsize_t(pos);
done:
    if (accept.obj) PyBuffer_Release(&accept);
    if (counts.obj) PyBuffer_Release(&counts);
    if (mins.obj) PyBuffer_Release(&mins);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL,
     "frame(buf, pos, accept, max_size, arg_counts, min_counts, packet_type, out) -> position of the first item "
     "not framed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "geartrain.protocol._speedups", "C framing of well-formed Gearman packets.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module_def); }
