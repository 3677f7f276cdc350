"""Linked platforms: province <- city <- county camrelays share catalogues and streams.

The *lower* side issues a federation credential (:mod:`.credentials`): a service account
of role ``federation`` with one API token, scoped to the units and cameras it agrees to
share; it serves that shared catalogue (never a stream address or a camera credential),
its cameras over WHEP, and its live channel; it journals who watches above
(``POST /api/v1/federation/views``) and pushes cameras upward for a while.

The *upper* side registers a link (:mod:`.links`: URL, sealed credential, the unit the
imported tree hangs under) and keeps the import current (:mod:`.sync`): a full sync,
then again within a fraction of a second of every ``catalog.changed`` or
``federation.push`` on the lower side's live channel, and once a minute; a failed sync
keeps the last good copy, marked stale.  The streams are pulled by the relay's WHEP
source (``whep+http://…/whep/<remote id>`` with the link's credential), resolved from
the link at pull time (``camrelay.app.make_resolver``).
"""
