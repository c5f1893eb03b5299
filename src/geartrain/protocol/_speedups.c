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
 *
 * dispatch(buf, pos, accept, max_size, arg_counts, min_counts, handlers, peer, now) -> new_pos
 *
 * The server's form of frame(): the same packets, each handed at once to handlers[type](peer, args, now).
 *
 * encode(ptype, *args, magic=b"\0RES") -> bytes: codec.encode in one allocation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define HEADER_SIZE 12

static inline void write_be32(unsigned char *p, uint32_t value) {
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

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

/* The framing parameters both entry points share, read from their first six arguments (see frame()). */
typedef struct {
    Py_buffer view, accept, counts, mins;
    Py_ssize_t pos;
    unsigned long long max_size;
} Framing;

static void release_framing(Framing *f) {
    if (f->accept.obj) PyBuffer_Release(&f->accept);
    if (f->counts.obj) PyBuffer_Release(&f->counts);
    if (f->mins.obj) PyBuffer_Release(&f->mins);
    if (f->view.obj) PyBuffer_Release(&f->view);
}

/* 0 on success; -1 with an exception set (the buffers taken so far are released by release_framing). */
static int open_framing(Framing *f, PyObject *const *argv) {
    memset(f, 0, sizeof(*f));
    if (PyObject_GetBuffer(argv[0], &f->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    f->pos = PyLong_AsSsize_t(argv[1]);
    f->max_size = PyLong_AsUnsignedLongLong(argv[3]);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (PyObject_GetBuffer(argv[2], &f->accept, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(argv[4], &f->counts, PyBUF_SIMPLE) < 0 ||
        PyObject_GetBuffer(argv[5], &f->mins, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (f->accept.len != 4 || f->counts.len != f->mins.len || f->counts.len == 0) {
        PyErr_SetString(PyExc_ValueError, "bad magic or argument count tables");
        return -1;
    }
    if (f->pos < 0) {
        f->pos = 0;
    }
    return 0;
}

/* Frames the packet at f->pos: 1 with *ptype and a new reference in *args (f->pos moved past it), 0 when the
 * packet is not one this framer handles or is incomplete (f->pos unchanged), -1 on an exception. */
static int next_packet(Framing *f, uint32_t *ptype_out, PyObject **args_out) {
    const unsigned char *header = (const unsigned char *)f->view.buf + f->pos;
    Py_ssize_t available = f->view.len - f->pos;
    if (available < HEADER_SIZE || memcmp(header, f->accept.buf, 4) != 0) {
        return 0; /* incomplete, or admin text, the other magic, garbage: Python decides */
    }
    uint32_t ptype = read_be32(header + 4);
    uint32_t size = read_be32(header + 8);
    if (ptype == 0 || (Py_ssize_t)ptype >= f->counts.len || (unsigned long long)size > f->max_size) {
        return 0;
    }
    if ((Py_ssize_t)size > available - HEADER_SIZE) {
        return 0; /* incomplete */
    }
    int count = ((const unsigned char *)f->counts.buf)[ptype];
    if (count > 64) {
        return 0;
    }
    PyObject *args = split_body((const char *)header + HEADER_SIZE, (Py_ssize_t)size, count,
                                ((const unsigned char *)f->mins.buf)[ptype]);
    if (args == NULL) {
        return PyErr_Occurred() ? -1 : 0; /* too few arguments: Python reports it */
    }
    f->pos += HEADER_SIZE + (Py_ssize_t)size;
    *ptype_out = ptype;
    *args_out = args;
    return 1;
}

static PyObject *frame(PyObject *module, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 8) {
        PyErr_SetString(PyExc_TypeError, "frame() takes 8 arguments");
        return NULL;
    }
    PyObject *packet_type = argv[6];
    PyObject *out = argv[7];
    if (!PyType_Check(packet_type) || !PyType_IsSubtype((PyTypeObject *)packet_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "packet_type must be a tuple subclass");
        return NULL;
    }
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    Framing f;
    PyObject *result = NULL;
    if (open_framing(&f, argv) < 0) {
        goto done;
    }
    for (;;) {
        uint32_t ptype;
        PyObject *args;
        int found = next_packet(&f, &ptype, &args);
        if (found < 0) {
            goto done;
        }
        if (found == 0) {
            break;
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
    }
    result = PyLong_FromSsize_t(f.pos);
done:
    release_framing(&f);
    return result;
}

static PyObject *close_after_flush_name;

/* dispatch(buf, pos, accept, max_size, arg_counts, min_counts, handlers, peer, now) -> new_pos
 *
 * Frames like frame(), but hands each packet straight to handlers[type](peer, args, now) instead of building a
 * list: no packet object and no Python loop per packet. It stops where frame() stops, and also right after a
 * handler that set peer.close_after_flush (nothing more of that peer's input is acted on). An exception raised
 * by a handler propagates, with the position of the packets already handled lost: the caller closes the
 * connection then. */
static PyObject *dispatch(PyObject *module, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 9) {
        PyErr_SetString(PyExc_TypeError, "dispatch() takes 9 arguments");
        return NULL;
    }
    PyObject *handlers = argv[6];
    if (!PyList_Check(handlers)) {
        PyErr_SetString(PyExc_TypeError, "handlers must be a list");
        return NULL;
    }
    Framing f;
    PyObject *result = NULL;
    if (open_framing(&f, argv) < 0) {
        goto done;
    }
    PyObject *call_args[3] = {argv[7], NULL, argv[8]};
    for (;;) {
        uint32_t ptype;
        PyObject *args;
        int found = next_packet(&f, &ptype, &args);
        if (found < 0) {
            goto done;
        }
        if (found == 0) {
            break;
        }
        if ((Py_ssize_t)ptype >= PyList_GET_SIZE(handlers)) {
            Py_DECREF(args);
            PyErr_Format(PyExc_IndexError, "no handler for packet type %u", ptype);
            goto done;
        }
        PyObject *handler = PyList_GET_ITEM(handlers, ptype);
        Py_INCREF(handler); /* a handler may replace list entries (a drain rebuilds the submit handlers) */
        call_args[1] = args;
        PyObject *returned = PyObject_Vectorcall(handler, call_args, 3, NULL);
        Py_DECREF(handler);
        Py_DECREF(args);
        if (returned == NULL) {
            goto done;
        }
        Py_DECREF(returned);
        PyObject *closing = PyObject_GetAttr(argv[7], close_after_flush_name);
        if (closing == NULL) {
            goto done;
        }
        int stop = PyObject_IsTrue(closing);
        Py_DECREF(closing);
        if (stop != 0) {
            if (stop < 0) {
                goto done;
            }
            break;
        }
    }
    result = PyLong_FromSsize_t(f.pos);
done:
    release_framing(&f);
    return result;
}

static PyObject *encode(PyObject *module, PyObject *const *argv, Py_ssize_t nargsf, PyObject *kwnames);

/* The rare call with a bytearray or memoryview argument (as b"\0".join takes): copy each to bytes, then encode. */
static PyObject *encode_converted(PyObject *module, PyObject *const *argv, Py_ssize_t nargs, PyObject *magic) {
    PyObject *converted = PyTuple_New(nargs + (magic != NULL));
    if (converted == NULL) {
        return NULL;
    }
    Py_INCREF(argv[0]);
    PyTuple_SET_ITEM(converted, 0, argv[0]);
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyObject *item = PyBytes_Check(argv[i]) ? (Py_INCREF(argv[i]), argv[i]) : PyBytes_FromObject(argv[i]);
        if (item == NULL) {
            Py_DECREF(converted);
            return NULL;
        }
        PyTuple_SET_ITEM(converted, i, item);
    }
    PyObject *kwnames = NULL;
    if (magic != NULL) {
        Py_INCREF(magic);
        PyTuple_SET_ITEM(converted, nargs, magic);
        kwnames = Py_BuildValue("(s)", "magic");
        if (kwnames == NULL) {
            Py_DECREF(converted);
            return NULL;
        }
    }
    PyObject *packet = encode(module, &PyTuple_GET_ITEM(converted, 0), nargs, kwnames);
    Py_XDECREF(kwnames);
    Py_DECREF(converted);
    return packet;
}

/* encode(ptype, *args, magic=b"\0RES") -> bytes: one packet, its arguments joined by NUL, built in one
 * allocation (the Python version joins, packs the header and concatenates: three). */
static PyObject *encode(PyObject *module, PyObject *const *argv, Py_ssize_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *magic = NULL;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "magic") != 0) {
                PyErr_Format(PyExc_TypeError, "encode() got an unexpected keyword argument %R", name);
                return NULL;
            }
            magic = argv[nargs + i];
        }
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "encode() needs a packet type");
        return NULL;
    }
    unsigned long ptype = PyLong_AsUnsignedLong(argv[0]);
    if (ptype == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (ptype > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_OverflowError, "packet type out of range");
        return NULL;
    }
    const char *magic_bytes = "\0RES";
    if (magic != NULL) {
        if (!PyBytes_Check(magic) || PyBytes_GET_SIZE(magic) != 4) {
            PyErr_SetString(PyExc_ValueError, "magic must be 4 bytes");
            return NULL;
        }
        magic_bytes = PyBytes_AS_STRING(magic);
    }
    Py_ssize_t count = nargs - 1;
    Py_ssize_t body = count > 0 ? count - 1 : 0; /* the NULs between arguments */
    for (Py_ssize_t i = 1; i < nargs; i++) {
        if (!PyBytes_Check(argv[i])) {
            return encode_converted(module, argv, nargs, magic);
        }
        body += PyBytes_GET_SIZE(argv[i]);
    }
    if ((unsigned long long)body > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_OverflowError, "packet body too large");
        return NULL;
    }
    PyObject *packet = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + body);
    if (packet == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(packet);
    memcpy(out, magic_bytes, 4);
    write_be32(out + 4, (uint32_t)ptype);
    write_be32(out + 8, (uint32_t)body);
    out += HEADER_SIZE;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        if (i > 1) {
            *out++ = 0;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(argv[i]);
        memcpy(out, PyBytes_AS_STRING(argv[i]), (size_t)size);
        out += size;
    }
    return packet;
}

static PyMethodDef methods[] = {
    {"frame", (PyCFunction)(void (*)(void))frame, METH_FASTCALL,
     "frame(buf, pos, accept, max_size, arg_counts, min_counts, packet_type, out) -> position of the first item "
     "not framed"},
    {"dispatch", (PyCFunction)(void (*)(void))dispatch, METH_FASTCALL,
     "dispatch(buf, pos, accept, max_size, arg_counts, min_counts, handlers, peer, now) -> position of the first "
     "item not handled"},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL | METH_KEYWORDS,
     "encode(ptype, *args, magic=b'\\0RES') -> one packet, its arguments joined by NUL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "geartrain.protocol._speedups", "C framing of well-formed Gearman packets.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    close_after_flush_name = PyUnicode_InternFromString("close_after_flush");
    if (close_after_flush_name == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
