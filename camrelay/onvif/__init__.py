"""ONVIF: discovery, device reading, PTZ and snapshots, as a typed layer over onvif-zeep-async.

Modules (import what you need; ``discovery`` does not load zeep):

* ``models``     frozen dataclasses: ``DeviceTarget``, ``Credentials``, ``DiscoveredDevice``,
                 ``DeviceReport``, ``MediaProfile``, ``StreamInfo``, ``PtzPreset``, ``FoundDevice``
* ``errors``     ``OnvifError`` and its children (auth, unreachable, not ONVIF, timeout, ...)
* ``discovery``  WS-Discovery probes (multicast and directed unicast)
* ``device``     ``read_device``/``read_devices``, ``OnvifConnection``
* ``ptz``        ``PtzClient``;  ``ptzlock``: ``PtzLock`` (who controls a camera's PTZ)
* ``snapshot``   ``fetch_snapshot``;  ``identity``: ``external_id_for``, ``same_stream``
* ``scan``       ``scan``: discovery + reading, for ``camrelay discover``

This package never imports ``camrelay.relay`` or ``camrelay.web``.
"""
