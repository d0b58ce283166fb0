"""atomic.replacing: a write that fails leaves the old file whole and no temporary behind."""
import pytest

import atomic


def test_a_finished_write_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "checkpoint.npz"
    with atomic.replacing(path) as temporary:
        assert temporary.parent == path.parent and temporary.suffix == ".npz"
        assert temporary.name.startswith(".")  # unseen by globs such as *.npz
        temporary.write_bytes(b"new")
    assert path.read_bytes() == b"new" and sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_crashed_write_keeps_the_old_file(tmp_path):
    path = atomic.write_text(tmp_path / "metrics.jsonl", "old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic.replacing(path) as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == [path.name]
