"""Files the bank creates for itself on first use (development keys and secrets)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_once(path: Path, content: bytes) -> None:
    """Create `path` holding `content` (mode 0600) unless it exists; the first creator wins.

    Written whole under a private name, then hard-linked into place: link() fails when the
    name exists, so of two processes starting at once the first wins and the other keeps what
    the winner wrote (os.replace would let the last writer win, after the first had already
    used a key or secret that no longer exists). Readers never see a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
