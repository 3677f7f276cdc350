"""Schemathesis hooks for the OpenAPI run of test_catalog_openapi.py (loaded by path
through SCHEMATHESIS_HOOKS, in the schemathesis process, not by pytest).

The WHEP offer is ``application/sdp``: text.  Schemathesis has no serializer for it, so
the generated string goes on the wire as it would for text/plain, under the documented
media type.  Random text is never a valid offer, so the run checks the refusals (400,
415, 413 problems); tests/webrtc covers real offers.
"""

import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")
