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
import sys
import zipfile
import zlib

# What reading a truncated, damaged or foreign `.npz` raises.
UNREADABLE_CACHE = (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.BadZipFile)


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
    except UNREADABLE_CACHE:
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
