"""What the throwaway database servers of the test session share: a free loopback port, and a directory
owned by the unprivileged user a server must run as when the tests run as root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_user(*names: str) -> str | None:
    """The first of *names* that exists when running as root (servers refuse root), else None; LookupError
    if none does."""
    if os.geteuid() != 0:
        return None
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise LookupError(f"running as root and no unprivileged user ({', '.join(names)}) exists")


def scratch_directory(prefix: str, user: str | None) -> Path:
    """A new directory, owned by *user* when there is one."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        os.chmod(root, 0o755)
        shutil.chown(root, user, None)
    return root
