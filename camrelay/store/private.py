"""Files only camrelay's own user may read: the data directory (0700), the SQLite store and
journal (0600), the keys and the journal's anchor (0600).

SQLite creates its ``-wal`` and ``-shm`` files with the mode of the database file, so a
database file created here 0600 keeps its companions 0600 too.  Files an older camrelay
left readable by others are tightened when they are opened.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if it is missing; warn about an existing open one."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("the data directory %s is open to other users (mode %o); "
                        "`chmod 700` it", path, mode)


def tighten(path: Path) -> None:
    """Make an existing file of camrelay's owner-only (0600); nothing if it is missing."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, FILE_MODE)
            log.info("made %s readable by its owner only (was mode %o)", path, mode)
    except FileNotFoundError:
        pass
    except PermissionError as err:
        log.warning("cannot restrict %s to its owner: %s", path, err)


def private_sqlite(path: Path) -> None:
    """Create the SQLite database file 0600 before SQLite does (its ``-wal``/``-shm``
    take its mode); tighten an older, world-readable one.  Its directory must exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        for one in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            tighten(one)
    else:
        os.close(fd)  # an empty file is an empty SQLite database


def sqlite_file_of(url: str) -> Path | None:
    """The file behind a ``sqlite…:///PATH`` URL (None: another database, or in memory)."""
    if not url.startswith("sqlite"):
        return None
    name = url.split("///", 1)[1] if "///" in url else ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)
