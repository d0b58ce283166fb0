"""Atomic file writes: a crash never leaves half a checkpoint, log, cache, model or grid.

Every file a run or a user keeps is written to a temporary file beside it and moved into place
with `os.replace`. The temporary name is hidden (a leading dot, so globs such as `*.keras` or a
cache's `name-*.npz` never see it), unique to the process (two processes writing the same cache
do not collide), and keeps the suffix (savers pick the format from it).
"""
import contextlib
import os
import pathlib


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
