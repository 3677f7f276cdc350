"""Build of the optional C extension; the project's metadata is in pyproject.toml.

``camrelay.relay.sinks._fastsend`` (the fan-out's send path: RTP header, SRTP through
pylibsrtp's libsrtp, one ``sendmmsg``) and ``camrelay.relay.rtsp._fastrecv`` (a
camera's UDP socket drained with ``recvmmsg``) are built when a C compiler and the Python
headers exist; without them the install goes on and camrelay uses its pure-Python paths.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):  # sendmmsg(2), recvmmsg(2)
    ext_modules.append(Extension(
        "camrelay.relay.sinks._fastsend",
        sources=["camrelay/relay/sinks/_fastsend.c"],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        optional=True,
    ))
    ext_modules.append(Extension(
        "camrelay.relay.rtsp._fastrecv",
        sources=["camrelay/relay/rtsp/_fastrecv.c"],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        optional=True,
    ))

setup(ext_modules=ext_modules)
