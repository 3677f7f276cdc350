/* camrelay.relay.rtsp._fastrecv: drain a camera's UDP socket in one call.
 *
 * recv_datagrams(fd, host, limit) reads up to `limit` datagrams with recvmmsg(2)
 * (MSG_DONTWAIT, the GIL released), in batches of BATCH, until the socket is empty, and
 * returns (datagrams, foreign, oversize): the payloads (bytes) that came from `host` (the
 * camera's address, packed as by socket.inet_pton: 4 bytes for IPv4, 16 for IPv6; an
 * IPv4 camera also matches on an IPv6 socket as ::ffff:a.b.c.d) in arrival order, how
 * many came from anywhere else, and how many were longer than SLOT (9 KiB: a jumbo
 * frame; RTP from a camera stays below the path MTU) -- both dropped.  An empty socket
 * is ([], 0, 0), no exception, which is what makes reading every camera on a timer
 * cheap.  A receive error other than EAGAIN/EINTR (e.g. an ICMP error queued on the
 * socket) ends the call with what was read so far; OSError is raised only when nothing
 * was read.  The receive buffers are per thread (allocated on a thread's first call), as
 * the GIL is released while the kernel copies into them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define BATCH 32
#define SLOT 9216

typedef union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    struct sockaddr_storage storage;
} sockaddr_any;

struct state { /* one per thread */
    unsigned char buffers[BATCH][SLOT];
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    sockaddr_any addrs[BATCH];
};

static int
from_host(const sockaddr_any *addr, const unsigned char *host, Py_ssize_t host_len)
{
    if (addr->sa.sa_family == AF_INET && host_len == 4)
        return memcmp(&addr->v4.sin_addr, host, 4) == 0;
    if (addr->sa.sa_family == AF_INET6) {
        const unsigned char *a = (const unsigned char *)&addr->v6.sin6_addr;
        if (host_len == 16)
            return memcmp(a, host, 16) == 0;
        if (host_len == 4) { /* ::ffff:a.b.c.d */
            static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            return memcmp(a, mapped, 12) == 0 && memcmp(a + 12, host, 4) == 0;
        }
    }
    return 0;
}

static PyObject *
recv_datagrams(PyObject *module, PyObject *args)
{
    int fd;
    Py_buffer host;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "iy*n:recv_datagrams", &fd, &host, &limit))
        return NULL;
    if (host.len != 4 && host.len != 16) {
        PyBuffer_Release(&host);
        PyErr_SetString(PyExc_ValueError, "host must be a packed IPv4 (4 bytes) or IPv6 "
                                          "(16 bytes) address");
        return NULL;
    }
    if (limit < 1) {
        PyBuffer_Release(&host);
        PyErr_SetString(PyExc_ValueError, "limit must be at least 1");
        return NULL;
    }
    if (fd < 0) {
        PyBuffer_Release(&host);
        PyErr_SetString(PyExc_ValueError, "fd must not be negative");
        return NULL;
    }

    static __thread struct state *st = NULL;
    if (st == NULL) {
        st = PyMem_RawMalloc(sizeof(*st));
        if (st == NULL) {
            PyBuffer_Release(&host);
            return PyErr_NoMemory();
        }
    }
    unsigned char (*buffers)[SLOT] = st->buffers;
    struct mmsghdr *msgs = st->msgs;
    struct iovec *iovs = st->iovs;
    sockaddr_any *addrs = st->addrs;

    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&host);
        return NULL;
    }
    Py_ssize_t foreign = 0, oversize = 0, total = 0;
    int saved_errno = 0;
    while (total < limit) {
        unsigned int want = (unsigned int)(limit - total < BATCH ? limit - total : BATCH);
        for (unsigned int i = 0; i < want; i++) {
            iovs[i].iov_base = buffers[i];
            iovs[i].iov_len = SLOT;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_len = 0;
        }
        int got;
        Py_BEGIN_ALLOW_THREADS
        do {
            got = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
        } while (got < 0 && errno == EINTR);
        if (got < 0)
            saved_errno = errno;
        Py_END_ALLOW_THREADS
        if (got < 0) {
            if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
                saved_errno = 0;
            break;
        }
        for (int i = 0; i < got; i++) {
            total++;
            if (!from_host(&addrs[i], host.buf, host.len)) {
                foreign++;
                continue;
            }
            if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > SLOT) {
                oversize++;
                continue;
            }
            PyObject *b = PyBytes_FromStringAndSize((const char *)buffers[i], msgs[i].msg_len);
            if (b == NULL || PyList_Append(out, b) < 0) {
                Py_XDECREF(b);
                Py_DECREF(out);
                PyBuffer_Release(&host);
                return NULL;
            }
            Py_DECREF(b);
        }
        if ((unsigned int)got < want)
            break; /* the socket is empty (or the next call would say EAGAIN) */
    }
    PyBuffer_Release(&host);
    if (saved_errno != 0 && total == 0) {
        Py_DECREF(out);
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(Nnn)", out, foreign, oversize);
}

static PyMethodDef methods[] = {
    {"recv_datagrams", recv_datagrams, METH_VARARGS,
     "recv_datagrams(fd, host, limit) -> (list[bytes], foreign, oversize): drain a UDP socket"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastrecv", "Draining a camera's UDP socket in one call.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__fastrecv(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "SLOT", SLOT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
