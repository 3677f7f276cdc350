"""camrelay's RTSP/RTP stack for pulling H.264 from a camera (and for sending it audio on
an ONVIF back-channel), usable on its own.

:mod:`.client` (RTSP/1.0 session: OPTIONS, DESCRIBE, SETUP, PLAY, keep-alive, TEARDOWN;
interleaved TCP or UDP, drained by the ``_fastrecv`` extension where it is built),
:mod:`.connection` (one control connection), :mod:`.auth` (Basic and Digest),
:mod:`.sdp` (session descriptions), :mod:`.rtp` (the H.264 depacketiser) and :mod:`.sps`
(picture size and rate from a sequence parameter set).  Nothing here knows the hub, its
streams or :class:`~camrelay.relay.stream.SourceSpec`: the adapter
:mod:`camrelay.relay.sources.rtsp` puts the stack behind the relay's ``Source``.
"""
