/* camrelay.relay.sinks._fastsend: one access unit to one WebRTC viewer in one call.
 *
 * For each RTP payload of the unit: the 8-byte RTP header (first byte, marker|PT,
 * sequence, timestamp) + the viewer's constant tail (SSRC, header extensions) + the
 * payload into a slot of a send buffer, SRTP-protected in place by libsrtp's
 * srtp_protect() -- called through the function pointer of the libsrtp that pylibsrtp
 * already loaded, on the viewer's srtp_t (aiortc's RTCDtlsTransport._tx_srtp); this
 * module links no libsrtp of its own -- then every packet with one sendmmsg(2)
 * (MSG_DONTWAIT, the GIL released) on the ICE socket to the nominated remote address.
 *
 * UDP GSO (UDP_SEGMENT, Linux >= 4.18), on unless the constructor says gso=False:
 * consecutive packets of one size, the last of them possibly shorter (what the kernel
 * can segment: the FU-A fragments of a NAL unit -- aiortc makes the first few a byte
 * longer than the others, so usually two runs), at most GSO_MAX_SEGMENTS and
 * GSO_MAX_BYTES, go as one message with a UDP_SEGMENT cmsg (gso_size = the first one's
 * length); a packet alone goes without it.  Receivers get the same datagrams either way: the kernel (or the
 * NIC) cuts the message at gso_size.  A message counts as sent whole or not at all.  When
 * the kernel refuses GSO for this socket or path (an errno of gso_refused(), or the
 * constructor's getsockopt(UDP_SEGMENT) probe fails: a kernel before 4.18 would ignore
 * the cmsg and send one large datagram), GSO is off for good on this UnitSender
 * (gso_error tells why) and the packets not yet sent go again, one per message, in the
 * same call.
 *
 * Nothing here raises for a network condition: a partial send, EAGAIN, ENOBUFS, a closed
 * socket or an SRTP failure comes back as a return value and Python decides (the fan-out
 * hands the unsent, already protected packets to the asyncio transport, which buffers
 * them).  Bad arguments raise TypeError / ValueError / OverflowError.
 *
 * srtp_protect() runs with the GIL held: the same srtp_t is used from Python (aiortc's
 * RTCP).  libsrtp 2.x signature: srtp_err_status_t srtp_protect(srtp_t, void *, int *);
 * Python checks pylibsrtp's declared type before handing us the pointer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <structmember.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* pylibsrtp's Session protects into a 1500-byte buffer and refuses packets longer than
 * that minus SRTP_MAX_TRAILER_LEN: the same limit here. */
#define PACKET_BUFFER 1500
#define SRTP_MAX_TRAILER_LEN (16 + 128) /* SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN */
#define RTP_FIXED 8                     /* first byte, marker|PT, sequence, timestamp */
#define MIN_TAIL 4                      /* at least the SSRC */
#define MAX_TAIL 256
#define SLOT 1536                       /* bytes per packet in the send buffer */
#define MIN_BATCH 64                    /* packets the shared send buffer holds at least */
#define MAX_BATCH 1024                  /* packets per sendmmsg() call at most (UIO_MAXIOV) */
#define MAX_UNIT_PACKETS 32768          /* more would reuse sequence numbers */
#define GSO_MAX_SEGMENTS 64             /* UDP_MAX_SEGMENTS since 4.18 (newer kernels: 128) */
#define GSO_MAX_BYTES 64000             /* per message: below 65535 less IP options and headers */

typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

typedef union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} sockaddr_any;

typedef struct {
    PyObject_HEAD
    PyObject *sock;   /* anything with fileno(); asked per call: -1 once closed */
    PyObject *owner;  /* keeps the srtp_t alive (the pylibsrtp Session) */
    void *srtp;
    srtp_protect_fn protect;
    sockaddr_any addr;
    socklen_t addrlen;
    unsigned char b0;
    unsigned char pt;
    Py_ssize_t tail_len;
    unsigned char tail[MAX_TAIL];
    int gso;                               /* UDP GSO in use (asked for, not refused) */
    int gso_error;                         /* the errno that turned it off; 0: none */
    unsigned long long gso_messages;       /* GSO messages the kernel took ... */
    unsigned long long gso_packets;        /* ... and the packets in them */
} UnitSender;

/* A UDP_SEGMENT cmsg, aligned as a cmsghdr. */
typedef union {
    struct cmsghdr align;
    unsigned char bytes[CMSG_SPACE(sizeof(uint16_t))];
} GsoControl;

/* What one sendmmsg() call needs for up to `capacity` packets, in one allocation: a slot
 * per packet, an iovec per packet, and at most one message and cmsg per packet. */
typedef struct {
    unsigned char *block;
    Py_ssize_t capacity;
    unsigned char *slots;
    struct mmsghdr *messages;
    struct iovec *vectors;
    GsoControl *controls;
} Batch;

#define BATCH_BYTES_PER_PACKET \
    (SLOT + sizeof(struct mmsghdr) + sizeof(struct iovec) + sizeof(GsoControl))

static int
batch_alloc(Batch *batch, Py_ssize_t capacity)
{
    unsigned char *block = PyMem_RawMalloc((size_t)capacity * BATCH_BYTES_PER_PACKET);
    if (block == NULL) {
        return -1;
    }
    batch->block = block;
    batch->capacity = capacity;
    batch->slots = block; /* SLOT and the structs' sizes keep each array aligned */
    batch->messages = (struct mmsghdr *)(batch->slots + (size_t)capacity * SLOT);
    batch->vectors = (struct iovec *)(batch->messages + capacity);
    batch->controls = (GsoControl *)(batch->vectors + capacity);
    return 0;
}

/* One batch for the process, used under the GIL and grown to the largest unit seen (up
 * to MAX_BATCH packets).  The GIL is released during sendmmsg(), so another thread may
 * enter meanwhile: it then gets a batch of its own. */
static Batch shared_batch = {NULL, 0, NULL, NULL, NULL, NULL};
static int shared_busy = 0;

static int
take_batch(Batch *batch, Py_ssize_t packets, int *shared)
{
    Py_ssize_t want = packets < MAX_BATCH ? packets : MAX_BATCH;
    if (!shared_busy) {
        if (shared_batch.capacity < want) {
            Py_ssize_t capacity = (want + MIN_BATCH - 1) / MIN_BATCH * MIN_BATCH;
            Batch grown;
            if (batch_alloc(&grown, capacity) == 0) {
                PyMem_RawFree(shared_batch.block);
                shared_batch = grown;
            }
        }
        if (shared_batch.capacity >= want) {
            shared_busy = 1;
            *shared = 1;
            *batch = shared_batch;
            return 0;
        }
    }
    *shared = 0;
    return batch_alloc(batch, want);
}

static void
give_batch(Batch *batch, int shared)
{
    if (shared) {
        shared_busy = 0;
    } else {
        PyMem_RawFree(batch->block);
    }
}

/* The errors with which the kernel refuses a UDP_SEGMENT message but would take the same
 * packets one by one: EINVAL (SO_NO_CHECK, too many segments), EIO (no checksum offload on
 * the device, UDP-Lite, IPsec), EMSGSIZE (gso_size and headers above the path MTU, as
 * Linux 6.x says it; without GSO such packets are fragmented), ENOPROTOOPT / EOPNOTSUPP. */
static int
gso_refused(int error)
{
    return error == EINVAL || error == EIO || error == EMSGSIZE || error == ENOPROTOOPT ||
           error == EOPNOTSUPP;
}

static int
address_from(UnitSender *self, int family, PyObject *addr)
{
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2 || PyTuple_GET_SIZE(addr) > 4) {
        PyErr_SetString(PyExc_TypeError, "addr must be a tuple (host, port[, flowinfo, scope_id])");
        return -1;
    }
    PyObject *host_obj = PyTuple_GET_ITEM(addr, 0);
    if (!PyUnicode_Check(host_obj)) {
        PyErr_SetString(PyExc_TypeError, "addr host must be a str (an IP literal)");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(host_obj);
    if (host == NULL) {
        return -1;
    }
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (port < 1 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "addr port must be 1..65535");
        return -1;
    }
    memset(&self->addr, 0, sizeof(self->addr));
    if (family == AF_INET) {
        if (PyTuple_GET_SIZE(addr) != 2) {
            PyErr_SetString(PyExc_ValueError, "an IPv4 address is (host, port)");
            return -1;
        }
        if (inet_pton(AF_INET, host, &self->addr.v4.sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv4 literal: %R", host_obj);
            return -1;
        }
        self->addr.v4.sin_family = AF_INET;
        self->addr.v4.sin_port = htons((uint16_t)port);
        self->addrlen = sizeof(struct sockaddr_in);
        return 0;
    }
    if (family == AF_INET6) {
        unsigned long flowinfo = 0, scope_id = 0;
        if (PyTuple_GET_SIZE(addr) > 2) {
            flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
            if (flowinfo == (unsigned long)-1 && PyErr_Occurred()) {
                return -1;
            }
        }
        if (PyTuple_GET_SIZE(addr) > 3) {
            scope_id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
            if (scope_id == (unsigned long)-1 && PyErr_Occurred()) {
                return -1;
            }
        }
        if (flowinfo > 0xFFFFFUL || scope_id > 0xFFFFFFFFUL) {
            PyErr_SetString(PyExc_ValueError, "addr flowinfo or scope_id out of range");
            return -1;
        }
        char literal[INET6_ADDRSTRLEN];
        const char *percent = strchr(host, '%'); /* "fe80::1%eth0": the index is scope_id */
        size_t length = percent ? (size_t)(percent - host) : strlen(host);
        if (length >= sizeof(literal)) {
            PyErr_Format(PyExc_ValueError, "not an IPv6 literal: %R", host_obj);
            return -1;
        }
        memcpy(literal, host, length);
        literal[length] = '\0';
        if (inet_pton(AF_INET6, literal, &self->addr.v6.sin6_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv6 literal: %R", host_obj);
            return -1;
        }
        self->addr.v6.sin6_family = AF_INET6;
        self->addr.v6.sin6_port = htons((uint16_t)port);
        self->addr.v6.sin6_flowinfo = htonl((uint32_t)flowinfo);
        self->addr.v6.sin6_scope_id = (uint32_t)scope_id;
        self->addrlen = sizeof(struct sockaddr_in6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "the socket's family %d is neither AF_INET nor AF_INET6", family);
    return -1;
}

/* The socket's descriptor now, or -1 when it is closed; -2 with an exception set. */
static int
current_fd(PyObject *sock)
{
    PyObject *result = PyObject_CallMethod(sock, "fileno", NULL);
    if (result == NULL) {
        return -2;
    }
    long fd = PyLong_AsLong(result);
    Py_DECREF(result);
    if (fd == -1 && PyErr_Occurred()) {
        return -2;
    }
    if (fd < 0 || fd > INT_MAX) {
        return -1;
    }
    return (int)fd;
}

static void *
pointer_from(PyObject *value, const char *what)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int (an address)", what);
        return NULL;
    }
    unsigned long long address = PyLong_AsUnsignedLongLong(value); /* negative: OverflowError */
    if (address == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (address == 0 || address > UINTPTR_MAX) {
        PyErr_Format(PyExc_ValueError, "%s must be a valid address, not NULL", what);
        return NULL;
    }
    return (void *)(uintptr_t)address;
}

static int
configure(UnitSender *self, PyObject *sock, PyObject *addr, PyObject *srtp, PyObject *protect,
          int b0, int pt, const Py_buffer *tail, PyObject *owner, int gso)
{
    if (b0 < 0 || b0 > 0xFF || (b0 & 0xEF) != 0x80) {
        PyErr_SetString(PyExc_ValueError,
                        "b0 must be an RTP version 2 first byte without padding or CSRCs");
        return -1;
    }
    if (pt < 0 || pt > 127) {
        PyErr_SetString(PyExc_ValueError, "pt must be 0..127");
        return -1;
    }
    if (tail->len < MIN_TAIL || tail->len > MAX_TAIL || tail->len % 4 != 0) {
        PyErr_Format(PyExc_ValueError, "tail must be %d..%d bytes, a multiple of 4",
                     MIN_TAIL, MAX_TAIL);
        return -1;
    }
    void *srtp_ptr = pointer_from(srtp, "srtp");
    if (srtp_ptr == NULL) {
        return -1;
    }
    void *protect_ptr = pointer_from(protect, "protect");
    if (protect_ptr == NULL) {
        return -1;
    }
    int fd = current_fd(sock);
    if (fd == -2) {
        return -1;
    }
    if (fd == -1) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    int type = 0;
    socklen_t type_len = sizeof(type);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (type != SOCK_DGRAM) {
        PyErr_SetString(PyExc_ValueError, "sock must be a datagram socket");
        return -1;
    }
    if (address_from(self, local.ss_family, addr) != 0) {
        return -1;
    }
    int gso_error = 0;
    if (gso) {
        /* a kernel that does not know UDP_SEGMENT (before 4.18) would not refuse the
         * cmsg but ignore it, and send a whole run as one datagram: ask first */
        int segment = 0;
        socklen_t segment_len = sizeof(segment);
        if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &segment, &segment_len) != 0) {
            gso = 0;
            gso_error = errno ? errno : ENOPROTOOPT;
        }
    }
    Py_INCREF(sock);
    Py_XSETREF(self->sock, sock);
    Py_INCREF(owner);
    Py_XSETREF(self->owner, owner);
    self->srtp = srtp_ptr;
    self->protect = (srtp_protect_fn)protect_ptr;
    self->b0 = (unsigned char)b0;
    self->pt = (unsigned char)pt;
    self->tail_len = tail->len;
    memcpy(self->tail, tail->buf, (size_t)tail->len);
    self->gso = gso;
    self->gso_error = gso_error;
    self->gso_messages = 0;
    self->gso_packets = 0;
    return 0;
}

static int
UnitSender_init(UnitSender *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"sock", "addr", "srtp", "protect", "b0", "pt", "tail", "owner",
                               "gso", NULL};
    PyObject *sock, *addr, *srtp, *protect, *owner = Py_None;
    int b0, pt, gso = 1;
    Py_buffer tail;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOiiy*|O$p:UnitSender", keywords, &sock,
                                     &addr, &srtp, &protect, &b0, &pt, &tail, &owner, &gso)) {
        return -1;
    }
    int rc = configure(self, sock, addr, srtp, protect, b0, pt, &tail, owner, gso);
    PyBuffer_Release(&tail);
    return rc;
}

/* Header + tail + payload into slot; srtp_protect() in place; the protected length, or
 * -1 with *status set. */
static int
build(UnitSender *self, unsigned char *slot, PyObject *payload, int marker, uint16_t seq,
      uint32_t ts, int *status)
{
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    slot[0] = self->b0;
    slot[1] = (unsigned char)(self->pt | (marker ? 0x80 : 0));
    slot[2] = (unsigned char)(seq >> 8);
    slot[3] = (unsigned char)seq;
    slot[4] = (unsigned char)(ts >> 24);
    slot[5] = (unsigned char)(ts >> 16);
    slot[6] = (unsigned char)(ts >> 8);
    slot[7] = (unsigned char)ts;
    memcpy(slot + RTP_FIXED, self->tail, (size_t)self->tail_len);
    memcpy(slot + RTP_FIXED + self->tail_len, PyBytes_AS_STRING(payload), (size_t)size);
    int length = (int)(RTP_FIXED + self->tail_len + size);
    *status = self->protect(self->srtp, slot, &length);
    if (*status != 0) {
        return -1;
    }
    if (length <= 0 || length > PACKET_BUFFER) { /* cannot happen with libsrtp 2.x */
        *status = -1;
        return -1;
    }
    return length;
}

/* The messages for packets [first, end) of the batch, to `to`: with GSO, runs of packets
 * the kernel can segment (the same length, the last one possibly shorter; at most
 * GSO_MAX_SEGMENTS and GSO_MAX_BYTES) as one message each with a UDP_SEGMENT cmsg, a
 * packet alone without it; without GSO one message per packet.  Returns the count. */
static Py_ssize_t
group(Batch *batch, Py_ssize_t first, Py_ssize_t end, sockaddr_any *to, socklen_t to_len,
      int gso)
{
    Py_ssize_t count = 0;
    Py_ssize_t i = first;
    while (i < end) {
        Py_ssize_t j = i + 1;
        size_t size = batch->vectors[i].iov_len;
        if (gso) {
            size_t bytes = size;
            while (j < end && j - i < GSO_MAX_SEGMENTS) {
                size_t length = batch->vectors[j].iov_len;
                if (length > size || bytes + length > GSO_MAX_BYTES) {
                    break;
                }
                bytes += length;
                j++;
                if (length < size) { /* a shorter segment ends the run */
                    break;
                }
            }
        }
        struct mmsghdr *message = &batch->messages[count];
        memset(message, 0, sizeof(*message));
        message->msg_hdr.msg_name = to;
        message->msg_hdr.msg_namelen = to_len;
        message->msg_hdr.msg_iov = &batch->vectors[i];
        message->msg_hdr.msg_iovlen = (size_t)(j - i);
        if (j - i > 1) {
            GsoControl *control = &batch->controls[count];
            memset(control, 0, sizeof(*control));
            message->msg_hdr.msg_control = control->bytes;
            message->msg_hdr.msg_controllen = sizeof(control->bytes);
            struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message->msg_hdr);
            cmsg->cmsg_level = SOL_UDP;
            cmsg->cmsg_type = UDP_SEGMENT;
            cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t gso_size = (uint16_t)size;
            memcpy(CMSG_DATA(cmsg), &gso_size, sizeof(gso_size));
        }
        count++;
        i = j;
    }
    return count;
}

/* sendmmsg() of packets [0, built) of the batch; the errno that stopped it (0: none), and
 * in *taken the packets the kernel took (a GSO message counts whole or not at all).  When
 * the kernel refuses a GSO message, GSO goes off for good and the rest goes again, one
 * packet per message.  Called with the GIL held; releases it around the system calls. */
static int
send_batch(UnitSender *self, int fd, Batch *batch, Py_ssize_t built, sockaddr_any *to,
           socklen_t to_len, Py_ssize_t *taken)
{
    Py_ssize_t done = 0; /* packets */
    for (;;) {
        int gso = self->gso;
        Py_ssize_t count = group(batch, done, built, to, to_len, gso);
        Py_ssize_t messages = 0; /* taken by the kernel */
        int error = 0;
        Py_BEGIN_ALLOW_THREADS
        while (messages < count) {
            int n = sendmmsg(fd, batch->messages + messages, (unsigned int)(count - messages),
                             MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                error = errno;
                break;
            }
            if (n == 0) { /* not for a non-empty vector; never spin on it */
                error = EAGAIN;
                break;
            }
            messages += n;
        }
        Py_END_ALLOW_THREADS
        for (Py_ssize_t m = 0; m < messages; m++) {
            size_t packets = batch->messages[m].msg_hdr.msg_iovlen;
            done += (Py_ssize_t)packets;
            if (packets > 1) {
                self->gso_messages++;
                self->gso_packets += packets;
            }
        }
        if (error && gso && messages < count &&
            batch->messages[messages].msg_hdr.msg_iovlen > 1 && gso_refused(error)) {
            self->gso = 0;
            self->gso_error = error;
            continue;
        }
        *taken = done;
        return error;
    }
}

PyDoc_STRVAR(send_unit_doc,
"send_unit(payloads, seq, ts, /)\n--\n\n"
"Send one access unit's RTP payloads (a tuple of bytes; the last one gets the marker\n"
"bit) with sequence numbers seq, seq+1, ... and RTP timestamp ts.\n\n"
"Returns None when every packet went out.  Otherwise (sent, errno, srtp_status, rest):\n"
"sent packets left with sendmmsg() (packets, not messages: a GSO message counts as all\n"
"of its packets or none); errno of the send that stopped (0: none); the libsrtp status\n"
"that stopped protection (0: none; then the payload at index sent + len(rest) was not\n"
"protected, nor any after it); rest: the following packets, protected, still to be\n"
"sent, in order.  A kernel that refuses GSO is no error: the packets go again without it.");

static PyObject *
UnitSender_send_unit(UnitSender *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "send_unit() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->sock == NULL) {
        PyErr_SetString(PyExc_ValueError, "UnitSender is not initialised");
        return NULL;
    }
    PyObject *payloads = args[0];
    if (!PyTuple_Check(payloads)) {
        PyErr_SetString(PyExc_TypeError, "payloads must be a tuple of bytes");
        return NULL;
    }
    unsigned long seq_arg = PyLong_AsUnsignedLong(args[1]);
    if (seq_arg == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long ts_arg = PyLong_AsUnsignedLong(args[2]);
    if (ts_arg == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (seq_arg > 0xFFFFUL || ts_arg > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "seq must be 0..65535 and ts 0..2**32-1");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(payloads);
    if (count > MAX_UNIT_PACKETS) {
        PyErr_Format(PyExc_ValueError, "at most %d packets per unit", MAX_UNIT_PACKETS);
        return NULL;
    }
    Py_ssize_t room = PACKET_BUFFER - SRTP_MAX_TRAILER_LEN - RTP_FIXED - self->tail_len;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *payload = PyTuple_GET_ITEM(payloads, i);
        if (!PyBytes_Check(payload)) {
            PyErr_Format(PyExc_TypeError, "payload %zd is not bytes", i);
            return NULL;
        }
        if (PyBytes_GET_SIZE(payload) > room) {
            PyErr_Format(PyExc_ValueError, "payload %zd is %zd bytes: at most %zd fit", i,
                         PyBytes_GET_SIZE(payload), room);
            return NULL;
        }
    }
    if (count == 0) {
        Py_RETURN_NONE;
    }
    int fd = current_fd(self->sock);
    if (fd == -2) {
        return NULL;
    }
    int shared;
    Batch batch;
    if (take_batch(&batch, count, &shared) != 0) {
        return PyErr_NoMemory();
    }
    sockaddr_any to = self->addr; /* a copy: the kernel reads it without the GIL */
    socklen_t to_len = self->addrlen;
    uint16_t seq = (uint16_t)seq_arg;
    uint32_t ts = (uint32_t)ts_arg;
    Py_ssize_t sent = 0;   /* packets the kernel took */
    Py_ssize_t next = 0;   /* next payload to build */
    int error = fd < 0 ? EBADF : 0;
    int status = 0;
    PyObject *rest = NULL;

    while (next < count && !error && !status) {
        Py_ssize_t built = 0;
        while (built < batch.capacity && next < count) {
            unsigned char *slot = batch.slots + (size_t)built * SLOT;
            int length = build(self, slot, PyTuple_GET_ITEM(payloads, next), next == count - 1,
                               (uint16_t)(seq + next), ts, &status);
            if (length < 0) {
                break;
            }
            batch.vectors[built].iov_base = slot;
            batch.vectors[built].iov_len = (size_t)length;
            built++;
            next++;
        }
        if (built == 0) {
            break;
        }
        Py_ssize_t done = 0;
        error = send_batch(self, fd, &batch, built, &to, to_len, &done);
        sent += done;
        if (error) {
            /* hand back what this batch still holds, protected */
            rest = PyList_New(0);
            if (rest == NULL) {
                goto fail;
            }
            for (Py_ssize_t i = done; i < built; i++) {
                PyObject *packet = PyBytes_FromStringAndSize(
                    (const char *)batch.vectors[i].iov_base, (Py_ssize_t)batch.vectors[i].iov_len);
                if (packet == NULL || PyList_Append(rest, packet) != 0) {
                    Py_XDECREF(packet);
                    goto fail;
                }
                Py_DECREF(packet);
            }
        }
    }
    if (error && !status) {
        /* and protect the ones never built, for Python to send */
        if (rest == NULL && (rest = PyList_New(0)) == NULL) {
            goto fail;
        }
        while (next < count) {
            int length = build(self, batch.slots, PyTuple_GET_ITEM(payloads, next),
                               next == count - 1, (uint16_t)(seq + next), ts, &status);
            if (length < 0) {
                break;
            }
            PyObject *packet = PyBytes_FromStringAndSize((const char *)batch.slots, length);
            if (packet == NULL || PyList_Append(rest, packet) != 0) {
                Py_XDECREF(packet);
                goto fail;
            }
            Py_DECREF(packet);
            next++;
        }
    }
    give_batch(&batch, shared);
    if (!error && !status) {
        Py_RETURN_NONE;
    }
    if (rest == NULL) {
        rest = PyList_New(0);
        if (rest == NULL) {
            return NULL;
        }
    }
    return Py_BuildValue("(niiN)", sent, error, status, rest);
fail:
    give_batch(&batch, shared);
    Py_XDECREF(rest);
    return NULL;
}

static int
UnitSender_traverse(UnitSender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sock);
    Py_VISIT(self->owner);
    return 0;
}

static int
UnitSender_clear(UnitSender *self)
{
    Py_CLEAR(self->sock);
    Py_CLEAR(self->owner);
    return 0;
}

static void
UnitSender_dealloc(UnitSender *self)
{
    PyObject_GC_UnTrack(self);
    UnitSender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
UnitSender_get_gso(UnitSender *self, void *closure)
{
    return PyBool_FromLong(self->gso);
}

static PyGetSetDef UnitSender_getset[] = {
    {"gso", (getter)UnitSender_get_gso, NULL,
     "True while units go out with UDP GSO: asked for and not refused by the kernel.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef UnitSender_members[] = {
    {"gso_error", T_INT, offsetof(UnitSender, gso_error), READONLY,
     "The errno with which the kernel refused GSO, turning it off for good (0: never)."},
    {"gso_messages", T_ULONGLONG, offsetof(UnitSender, gso_messages), READONLY,
     "GSO messages (runs of two packets or more) the kernel took."},
    {"gso_packets", T_ULONGLONG, offsetof(UnitSender, gso_packets), READONLY,
     "Packets sent inside those GSO messages."},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef UnitSender_methods[] = {
    {"send_unit", (PyCFunction)(void (*)(void))UnitSender_send_unit, METH_FASTCALL,
     send_unit_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(UnitSender_doc,
"UnitSender(sock, addr, srtp, protect, b0, pt, tail, owner=None, *, gso=True)\n--\n\n"
"One viewer's RTP sender: sock is the ICE socket (anything with fileno(), asked per\n"
"call), addr the remote (host, port[, flowinfo, scope_id]) in the socket's family,\n"
"srtp the address of the viewer's srtp_t, protect the address of libsrtp 2.x\n"
"srtp_protect(), b0 the RTP first byte, pt the payload type, tail the header after\n"
"the first 8 bytes (SSRC and extensions), owner an object kept alive with this one\n"
"(the pylibsrtp Session owning srtp), gso whether to send runs of packets with UDP GSO\n"
"(UDP_SEGMENT) when the kernel takes it.");

static PyTypeObject UnitSenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "camrelay.relay.sinks._fastsend.UnitSender",
    .tp_basicsize = sizeof(UnitSender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = UnitSender_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)UnitSender_init,
    .tp_dealloc = (destructor)UnitSender_dealloc,
    .tp_traverse = (traverseproc)UnitSender_traverse,
    .tp_clear = (inquiry)UnitSender_clear,
    .tp_methods = UnitSender_methods,
    .tp_members = UnitSender_members,
    .tp_getset = UnitSender_getset,
};

static struct PyModuleDef fastsend_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "camrelay.relay.sinks._fastsend",
    .m_doc = "One access unit to one WebRTC viewer: RTP header, SRTP, one sendmmsg() (UDP GSO).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastsend(void)
{
    if (PyType_Ready(&UnitSenderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastsend_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SRTP_MAX_TRAILER_LEN", SRTP_MAX_TRAILER_LEN) < 0 ||
        PyModule_AddIntConstant(module, "PACKET_BUFFER", PACKET_BUFFER) < 0 ||
        PyModule_AddIntConstant(module, "MAX_UNIT_PACKETS", MAX_UNIT_PACKETS) < 0 ||
        PyModule_AddIntConstant(module, "GSO_MAX_SEGMENTS", GSO_MAX_SEGMENTS) < 0 ||
        PyModule_AddIntConstant(module, "GSO_MAX_BYTES", GSO_MAX_BYTES) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&UnitSenderType);
    if (PyModule_AddObject(module, "UnitSender", (PyObject *)&UnitSenderType) < 0) {
        Py_DECREF(&UnitSenderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
