"""A crash loses at most one checkpoint interval, and the next start or --resume works.

A tiny T2 training runs in a subprocess and is killed with SIGKILL (nothing of Python's clean-up
runs) at two moments: after a few steps but before its first checkpoint, and while it writes a
checkpoint at every step. The next start (in this process: TensorFlow is loaded already) must
work, and the checkpoint left behind must load. A full disk during a checkpoint write must keep
the previous checkpoint.
"""
import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

import ccyclegan_t2
import run_folder

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--base_filters", "4", "--batch_size", "8", "--sample_interval", "1000", "--run_name", "tiny"]


def train_in_process(tmp_path, *args):
    """ccyclegan_t2's main in this process; returns the exit status."""
    try:
        ccyclegan_t2.main(["--output_dir", str(tmp_path), *TINY, *map(str, args)])
    except SystemExit as exit:
        return exit.code
    return 0


def kill_when(tmp_path, args, ready, timeout=240):
    """Start the training in a subprocess, SIGKILL it as soon as `ready(run folder)`; the run folder."""
    run_dir = tmp_path / "saved_models" / "tiny"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    with open(tmp_path / "killed.log", "w") as output:
        process = subprocess.Popen([sys.executable, str(REPO / "ccyclegan_t2.py"), "--output_dir", str(tmp_path),
                                    *TINY, *map(str, args)], env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while not ready(run_dir):
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.time() < deadline, "the training did not get there in time"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return run_dir


def logged_steps(run_dir):
    """The steps of train_log.jsonl's whole lines (a kill may tear the last one)."""
    path = run_dir / run_folder.TRAIN_LOG
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [json.loads(line)["step"] for line in lines]


def test_a_kill_before_the_first_checkpoint_and_one_in_checkpointing_lose_at_most_one_interval(
        synthetic_csv, tmp_path, capsys):
    data = ["--data", synthetic_csv]  # 56 steps per epoch of 8 faces: no epoch-end checkpoint here
    # 1. killed after two steps, before any checkpoint: a fresh start reuses the folder
    run_dir = kill_when(tmp_path, [*data, "--checkpoint_interval", 1000, "--max_steps", 1000],
                        lambda run: len(logged_steps(run)) >= 2)
    assert not (run_dir / run_folder.CHECKPOINT).exists()
    assert train_in_process(tmp_path, *data, "--checkpoint_interval", 1000, "--max_steps", 2) == 0
    assert "starting afresh" in capsys.readouterr().out
    assert run_folder.read_checkpoint(run_dir)[0]["step"] == 2 and logged_steps(run_dir) == [1, 2]

    # 2. resumed with a checkpoint at every step, killed in the middle of them
    run_dir = kill_when(tmp_path, [*data, "--checkpoint_interval", 1, "--max_steps", 1000, "--resume"],
                        lambda run: len(logged_steps(run)) >= 6)
    state, arrays = run_folder.read_checkpoint(run_dir)  # whole, whatever moment the kill hit
    assert state["step"] >= max(logged_steps(run_dir)) - 1  # at most one interval lost
    assert all(np.all(np.isfinite(value)) for value in arrays.values())
    assert train_in_process(tmp_path, *data, "--checkpoint_interval", 1, "--max_steps", state["step"] + 1,
                            "--resume") == 0
    assert f"resumed {run_dir} at step {state['step']}" in capsys.readouterr().out
    assert run_folder.read_checkpoint(run_dir)[0]["step"] == state["step"] + 1
    assert logged_steps(run_dir) == list(range(1, state["step"] + 2))
    assert not list(run_dir.glob(".*.tmp*"))  # a temporary of the killed writer is cleared


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(synthetic_csv, tmp_path, monkeypatch, capsys):
    savez, calls = np.savez, []

    def disk_full_on_the_second(file, *args, **kwds):
        calls.append(file)
        if len(calls) == 2:
            pathlib.Path(file).write_bytes(b"PK\x03\x04 the disk filled up here")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        savez(file, *args, **kwds)

    monkeypatch.setattr(np, "savez", disk_full_on_the_second)
    args = ["--data", synthetic_csv, "--checkpoint_interval", 1, "--max_steps", 3]
    assert train_in_process(tmp_path, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "cannot write (No space left on device)" in err[0], err
    run_dir = tmp_path / "saved_models" / "tiny"
    assert run_folder.read_checkpoint(run_dir)[0]["step"] == 1
    assert not list(run_dir.glob(".*.tmp*"))
    monkeypatch.setattr(np, "savez", savez)
    assert train_in_process(tmp_path, *args, "--resume") == 0
    assert run_folder.read_checkpoint(run_dir)[0]["step"] == 3
