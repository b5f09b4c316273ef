"""The unprivileged account a throwaway server runs as when the harness runs as root, and what it can reach."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.records.errors import BenchError


@dataclass(frozen=True)
class ServerUser:
    """The unprivileged account that runs a throwaway server (and its installer) when the harness runs as root."""

    name: str
    uid: int
    gid: int


def find_server_user(names: Sequence[str], missing: str) -> ServerUser | None:
    """None when not root; else the first of `names` that exists; BenchError(`missing`) when none does."""
    if os.geteuid() != 0:
        return None
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ServerUser(name, entry.pw_uid, entry.pw_gid)
    raise BenchError(missing)


def reachable_by(path: Path, user: ServerUser) -> bool:
    """Whether `user` (primary group only: supplementary groups are dropped) can reach and read `path`.

    Checks the permission bits of every parent directory (search) and of `path` itself (read, and
    search/execute), along the path as written and along the path with symlinks resolved; ACLs are
    ignored, which errs on the side of copying or refusing.
    """
    given = Path(os.path.abspath(path))
    target = path.resolve()
    checks = [(parent, stat.S_IXUSR) for parent in (*given.parents, *target.parents)]
    checks += [(given, stat.S_IRUSR | stat.S_IXUSR), (target, stat.S_IRUSR | stat.S_IXUSR)]
    for item, owner_bits in checks:
        try:
            st = item.stat()
        except OSError:
            return False
        if st.st_uid == user.uid:
            bits = owner_bits
        elif st.st_gid == user.gid:
            bits = owner_bits >> 3
        else:
            bits = owner_bits >> 6
        if st.st_mode & bits != bits:
            return False
    return True


# For subprocess's user=, group= and extra_groups=: who the child runs as (None: unchanged, we are not root).


def uid_of(user: ServerUser | None) -> int | None:
    return None if user is None else user.uid


def gid_of(user: ServerUser | None) -> int | None:
    return None if user is None else user.gid


def extra_groups_of(user: ServerUser | None) -> list[int] | None:
    # Drop root's supplementary groups too; None leaves them untouched when we are not root.
    return None if user is None else []
