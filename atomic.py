"""Atomic file writes: a crash never leaves half a checkpoint, log, cache, model or grid.

Every file a run or a user keeps is written to a temporary file beside it and moved into place
with `os.replace`. The temporary name is hidden (a leading dot, so globs such as `*.keras` or a
cache's `name-*.npz` never see it), unique to the process (two processes writing the same cache
do not collide), and keeps the suffix (savers pick the format from it).

Caches are a speed-up, never a reason to fail: a cache file that cannot be read is a miss (it is
rebuilt), and one that cannot be written (a read-only folder, a full disk) is one warning line.
"""
import contextlib
import os
import pathlib
import re
import sys
import zipfile
import zlib

# What reading a truncated, damaged or foreign `.npz` (a cache, a checkpoint) raises.
UNREADABLE_NPZ = (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.BadZipFile)


# `replacing`'s temporary names: ".<stem>.tmp<pid><suffix>".
TEMPORARY = re.compile(r"\..+\.tmp(?P<pid>\d+)(\.[^.]*)?")


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(folder):
    """Remove the temporaries in `folder` that a killed process left (its pid is no longer alive);
    a kill during a checkpoint write leaves one as large as a checkpoint. Returns their paths."""
    removed = []
    for path in pathlib.Path(folder).glob(".*.tmp*"):
        match = TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no pid can be
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text(path, text):
    with replacing(path) as temporary:
        temporary.write_text(text)
    return pathlib.Path(path)


def read_cache(path, read):
    """`read(path)`, or None when the cache file is absent or unreadable (the caller rebuilds it)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    try:
        return read(path)
    except UNREADABLE_NPZ:
        return None


def write_cache(path, write) -> bool:
    """`write(temporary)` then move it to `path`; False, with one warning line, when that fails."""
    try:
        with replacing(path) as temporary:
            write(temporary)
        return True
    except OSError as err:
        print(f"warning: {path}: cache not written ({err.strerror or err}); going on without it",
              file=sys.stderr)
        return False
