"""Counting a bench viewer's RTP in the kernel: an eBPF socket filter (Linux, root).

A bench viewer must know that it receives every frame at full rate, but it must not eat
the cores the relay under test needs.  Reading every datagram to userland (even in
``recvmmsg`` batches, even with numpy) costs the viewers' process ~0.5 ms per
viewer-second, which on a 2-core machine caps what any relay can show.  Here one eBPF
program, attached to each viewer's ICE socket (``SO_ATTACH_BPF``), looks at the clear RTP
header of each datagram as the kernel queues it (SRTP leaves the header in clear), adds
to that socket's counters in a hash map keyed by the socket cookie -- packets, frames
(marker bits), lost packets (forward gaps in the sequence number) and payload bytes --
and drops it; RTCP
is dropped uncounted; anything else (STUN, DTLS) is passed, so ICE consent and DTLS keep
working through aioice and aiortc as usual.  Userland reads the counters with one
``bpf(BPF_MAP_LOOKUP_ELEM)`` per viewer when it wants them.  The counts are those the
numpy reader made (same header fields, same rules); nothing is decrypted in either.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

_SYS_BPF = 321  # x86_64
_MAP_CREATE, _MAP_LOOKUP, _MAP_UPDATE, _MAP_DELETE, _PROG_LOAD = 0, 1, 2, 3, 5
_MAP_HASH = 1
_PROG_SOCKET_FILTER = 1
SO_ATTACH_BPF = 50
SO_COOKIE = 57
_UDP_HEADER = 8  # a UDP socket's filter sees the UDP header first
_PASS = 0x40000  # keep the whole datagram
_FUNC_MAP_LOOKUP, _FUNC_SOCKET_COOKIE = 1, 46


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


# opcodes (linux/bpf_common.h, linux/bpf.h)
_LD_ABS_B, _LD_ABS_H = 0x30, 0x28
_MOV64_X, _MOV64_K = 0xBF, 0xB7
_AND64_K, _OR64_K, _SUB64_K, _SUB64_X, _ADD64_K = 0x57, 0x47, 0x17, 0x1F, 0x07
_JNE_K, _JEQ_K, _JLT_K, _JGT_K, _JGE_K, _JLE_K, _JA = 0x55, 0x15, 0xA5, 0x25, 0x35, 0xB5, 0x05
_STX_DW, _LDX_DW, _LDX_W, _XADD_DW = 0x7B, 0x79, 0x61, 0xDB
_CALL, _EXIT, _LD_IMM64 = 0x85, 0x95, 0x18
_PSEUDO_MAP_FD = 1


def _program(map_fd: int) -> bytes:
    """The filter; labels resolved by hand (jump offsets count instructions after the
    jump; the 16-byte map load counts two)."""
    p: list[bytes] = []
    label: dict[str, int] = {}
    fixups: list[tuple[int, str]] = []

    def emit(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
             to: str | None = None) -> None:
        if to is not None:
            fixups.append((len(p), to))
        p.append(_insn(code, dst, src, off, imm))

    def mark(name: str) -> None:
        label[name] = len(p)

    emit(_MOV64_X, 6, 1)                              # r6 = skb (LD_ABS reads it)
    emit(_LD_ABS_B, imm=_UDP_HEADER)                  # r0 = first byte
    emit(_AND64_K, 0, imm=0xC0)
    emit(_JNE_K, 0, imm=0x80, to="pass")              # not RTP/RTCP: STUN, DTLS
    emit(_LD_ABS_B, imm=_UDP_HEADER + 1)
    emit(_MOV64_X, 7, 0)                              # r7 = marker | payload type
    emit(_JLT_K, 7, imm=192, to="rtp")
    emit(_JLE_K, 7, imm=223, to="drop")               # RTCP: dropped uncounted
    mark("rtp")
    emit(_LD_ABS_H, imm=_UDP_HEADER + 2)
    emit(_MOV64_X, 8, 0)                              # r8 = sequence number
    emit(_MOV64_X, 1, 6)
    emit(_CALL, imm=_FUNC_SOCKET_COOKIE)
    emit(_STX_DW, 10, 0, off=-8)                      # key on the stack
    p.append(_insn(_LD_IMM64, 1, _PSEUDO_MAP_FD, imm=map_fd))
    p.append(_insn(0))
    emit(_MOV64_X, 2, 10)
    emit(_ADD64_K, 2, imm=-8)
    emit(_CALL, imm=_FUNC_MAP_LOOKUP)
    emit(_JEQ_K, 0, imm=0, to="drop")                 # not a registered viewer
    emit(_MOV64_X, 9, 0)
    emit(_MOV64_K, 1, imm=1)
    emit(_XADD_DW, 9, 1, off=0)                       # packets += 1
    emit(_LDX_W, 2, 6, off=0)                         # skb->len: UDP header + payload
    emit(_SUB64_K, 2, imm=_UDP_HEADER)
    emit(_XADD_DW, 9, 2, off=24)                      # bytes += payload
    emit(_MOV64_X, 2, 7)
    emit(_AND64_K, 2, imm=0x80)
    emit(_JEQ_K, 2, imm=0, to="seq")
    emit(_MOV64_K, 1, imm=1)
    emit(_XADD_DW, 9, 1, off=8)                       # frames += 1 (marker bit)
    mark("seq")
    emit(_LDX_DW, 3, 9, off=32)                       # last sequence | 1 << 16, or 0
    emit(_JEQ_K, 3, imm=0, to="store")
    emit(_AND64_K, 3, imm=0xFFFF)
    emit(_MOV64_X, 4, 8)
    emit(_SUB64_X, 4, 3)
    emit(_AND64_K, 4, imm=0xFFFF)                     # forward distance
    emit(_JLE_K, 4, imm=1, to="store")
    emit(_JGE_K, 4, imm=0x8000, to="store")           # late or repeated: not a loss
    emit(_SUB64_K, 4, imm=1)
    emit(_XADD_DW, 9, 4, off=16)                      # lost += gap - 1
    mark("store")
    emit(_OR64_K, 8, imm=0x10000)
    emit(_STX_DW, 9, 8, off=32)
    mark("drop")
    emit(_MOV64_K, 0, imm=0)
    emit(_EXIT)
    mark("pass")
    emit(_MOV64_K, 0, imm=_PASS)
    emit(_EXIT)
    for at, name in fixups:
        code, regs, _, imm = struct.unpack("<BBhi", p[at])
        p[at] = struct.pack("<BBhi", code, regs, label[name] - at - 1, imm)
    return b"".join(p)


class RtpCounter:
    """One map and one program for the whole process; :meth:`attach` a socket, then
    :meth:`read` its (packets, frames, lost)."""

    VALUE = struct.Struct("<QQQQQ")  # packets, frames, lost, payload bytes, last sequence

    def __init__(self, max_sockets: int = 8192) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self.map_fd = self._bpf(_MAP_CREATE, struct.pack("<IIIII", _MAP_HASH, 8,
                                                         self.VALUE.size, max_sockets, 0))
        code = _program(self.map_fd)
        self._code = ctypes.create_string_buffer(code, len(code))
        self._license = ctypes.create_string_buffer(b"GPL")
        self._log = ctypes.create_string_buffer(65536)
        try:
            self.prog_fd = self._bpf(_PROG_LOAD, struct.pack(
                "<IIQQIIQ", _PROG_SOCKET_FILTER, len(code) // 8,
                ctypes.addressof(self._code), ctypes.addressof(self._license),
                1, len(self._log), ctypes.addressof(self._log)))
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror}: {self._log.value.decode()}") from None

    def _bpf(self, cmd: int, attr: bytes) -> int:
        buf = ctypes.create_string_buffer(attr, 128)
        result = self._libc.syscall(_SYS_BPF, cmd, buf, 128)
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(result)

    def _elem(self, cmd: int, cookie: int, value: ctypes.Array[ctypes.c_char] | None = None,
              flags: int = 0) -> int:
        key = ctypes.create_string_buffer(struct.pack("<Q", cookie), 8)
        return self._bpf(cmd, struct.pack("<IIQQQ", self.map_fd, 0, ctypes.addressof(key),
                                          ctypes.addressof(value) if value is not None else 0,
                                          flags))

    @staticmethod
    def cookie(sock: socket.socket) -> int:
        return int(struct.unpack("<Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0])

    def attach(self, sock: socket.socket) -> int:
        """Count (and drop) ``sock``'s RTP from now on; returns its key for :meth:`read`."""
        cookie = self.cookie(sock)
        self._elem(_MAP_UPDATE, cookie, ctypes.create_string_buffer(self.VALUE.size))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, self.prog_fd)
        return cookie

    def read(self, cookie: int) -> tuple[int, int, int, int]:
        """(packets, frames, lost, payload bytes) so far."""
        value = ctypes.create_string_buffer(self.VALUE.size)
        self._elem(_MAP_LOOKUP, cookie, value)
        packets, frames, lost, size, _ = self.VALUE.unpack(value.raw)
        return packets, frames, lost, size

    def forget(self, cookie: int) -> None:
        try:
            self._elem(_MAP_DELETE, cookie)
        except OSError:
            pass

    def close(self) -> None:
        os.close(self.prog_fd)
        os.close(self.map_fd)
