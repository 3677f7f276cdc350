"""The store: the database every part of camrelay keeps its state in.

``Store`` opens it (SQLite by default, PostgreSQL by URL), migrates it and checks the
credential key.  Beside it: ``db`` the async connection layer, ``schema`` the tables as
of the newest version, ``migrations`` the versioned steps that bring an older store
there, ``crypto`` the sealing of camera credentials and ``private`` the owner-only files
of the data directory.
"""

from camrelay.store.store import Store, make_engine

__all__ = ["Store", "make_engine"]
