"""Data-parallel training (distribute.py): R replicas make the step one device makes.

Each multi-device run is a subprocess (TensorFlow's logical CPU devices and XLA's host devices are
fixed when the process starts), bounded in time; tiny networks on synthetic faces.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LR = 2e-4
# 2 host devices; XLA's cheapest CPU compile (halves this test's time; numerics are the same for
# both runs it compares).
JAX_TWO_DEVICES = ["--xla_force_host_platform_device_count=2", "--xla_backend_optimization_level=0",
                   "--xla_llvm_disable_expensive_passes=true"]
TINY = ["--base_filters", "4", "--batch_size", "8", "--sample_interval", "100", "--adam_lr", str(LR)]

# Runs experiment scripts' main() in order, in one process: [[script, [flags...]], ...]. On TF the
# CPU is split into 2 logical devices first (distribute.py's `mirrored` takes every CPU device).
DRIVER = textwrap.dedent("""
    import importlib, json, sys
    import keras
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    for script, argv in json.loads(sys.argv[1]):
        importlib.import_module(script).main(argv)
""")


def _run(runs, env, timeout=240):
    """The DRIVER over `runs` in a subprocess; fails with its output on error or timeout."""
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


def _state(run_dir):
    with np.load(pathlib.Path(run_dir) / "checkpoint.npz") as archive:
        return {key: archive[key] for key in archive.files if key != "state"}


def _log(run_dir):
    return [json.loads(line) for line in (pathlib.Path(run_dir) / "train_log.jsonl").read_text().splitlines()]


def assert_same_training(one_device, replicated, steps, rounding=None):
    """Same logged losses at every step, same optimizer state, same weights (up to Adam on noise).

    Adam's first moments are (1 - beta_1) x the gradients, so a gradient that is off by the
    replica count (an unscaled loss) shows there even though Adam's first step is scale-free. A few
    weights (conv biases in front of instance norm, whose true gradient is 0) get steps of
    +-lr from float noise whatever the device count; every weight stays within Adam's step bound.
    `rounding` (optimizer-state key -> largest difference measured between two valid summation
    orders of the same run, see `kernel_path_spread`) widens that key's tolerance to twice it.
    """
    log_a, log_b = _log(one_device), _log(replicated)
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b] == list(range(1, steps + 1))
    for row_a, row_b in zip(log_a, log_b):
        terms = [k for k in row_a if "/" in k]
        assert terms and terms == [k for k in row_b if "/" in k]
        np.testing.assert_allclose([row_b[k] for k in terms], [row_a[k] for k in terms], rtol=1e-5,
                                   err_msg=f"logged losses at step {row_a['step']}")
    a, b = _state(one_device), _state(replicated)
    assert a.keys() == b.keys()
    optimizer = [k for k in a if k.startswith("opt/") and a[k].ndim]
    scale = max(np.max(np.abs(a[k])) for k in optimizer)
    for key in optimizer:
        atol = max(1e-5 * scale, 2 * rounding[key]) if rounding else 1e-5 * scale
        np.testing.assert_allclose(b[key], a[key], rtol=1e-3, atol=atol, err_msg=key)
    weights = np.concatenate([(a[k] - b[k]).ravel() for k in a if k.startswith("net/")])
    assert np.max(np.abs(weights)) <= 2 * LR * steps
    assert np.mean(np.abs(weights) > 1e-6) < 0.01


# T1 and T2 share the trainer's step; T2 runs on TF and T1 on JAX to keep the suite short.

def test_tensorflow_mirrored_two_replicas_match_one_device_and_resume(tmp_path, synthetic_csv,
                                                                     subprocess_env):
    """T2, 2 steps, resumed after the first on the other device count: 1 then 2 replicas == 2 then 1."""
    out = ["--data", str(synthetic_csv), "--output_dir", str(tmp_path), *TINY]

    def two_steps(run_name, first, second):
        return [["ccyclegan_t2", [*out, "--run_name", run_name, "--max_steps", "1", "--distribute", first]],
                ["ccyclegan_t2", [*out, "--run_name", run_name, "--max_steps", "2", "--resume",
                                  "--distribute", second]]]
    stdout = _run(two_steps("one_then_two", "none", "mirrored") +
                  two_steps("two_then_one", "mirrored", "none"), subprocess_env(KERAS_BACKEND="tensorflow"))
    assert stdout.count("MirroredStrategy, 2 replicas") == 2
    runs = tmp_path / "saved_models"
    assert_same_training(runs / "one_then_two", runs / "two_then_one", steps=2)


def test_jax_data_parallel_two_devices_match_one_device(tmp_path, synthetic_csv, subprocess_env):
    """T1: 1 step on one device == 1 step on 2 devices."""
    pytest.importorskip("jax")
    out = ["--data", str(synthetic_csv), "--output_dir", str(tmp_path), *TINY, "--max_steps", "1"]
    stdout = _run([["ccyclegan_t1", [*out, "--run_name", "one"]],
                   ["ccyclegan_t1", [*out, "--run_name", "two", "--distribute", "data_parallel"]]],
                  subprocess_env(KERAS_BACKEND="jax", XLA_FLAGS=" ".join(JAX_TWO_DEVICES)))
    assert "DataParallel, 2 devices" in stdout
    assert_same_training(tmp_path / "saved_models" / "one", tmp_path / "saved_models" / "two", steps=1)


def kernel_path_spread(run_a, run_b):
    """Per optimizer-state key, the largest difference between two one-device runs of the same
    training that differ only in TensorFlow's kernels (oneDNN vs Eigen): how far float rounding
    alone moves that state. A 2-worker run sums its gradients in yet another order (per worker,
    then across workers), so it may differ from one device by about as much, not more."""
    a, b = _state(run_a), _state(run_b)
    return {key: float(np.max(np.abs(a[key] - b[key]))) for key in a if key.startswith("opt/") and a[key].ndim}


def test_multi_worker_two_processes_train_like_one_device(tmp_path, synthetic_csv, subprocess_env,
                                                          free_ports, run_bounded):
    """2 workers on 127.0.0.1 (TF_CONFIG): 3 steps, written by the chief only, equal to one device."""
    ports = free_ports(2)
    common = ["--data", str(synthetic_csv), *TINY, "--max_steps", "3", "--checkpoint_interval", "2"]
    script = "import ccyclegan_t2, sys; ccyclegan_t2.main(sys.argv[1:])"
    worker_tmp = tmp_path / "tmp"  # where the non-chief worker's private folder goes
    worker_tmp.mkdir()
    commands = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = subprocess_env(KERAS_BACKEND="tensorflow", TF_CONFIG=json.dumps(tf_config),
                             TMPDIR=str(worker_tmp))
        argv = [sys.executable, "-c", script, *common, "--output_dir", str(tmp_path / "cluster"),
                "--run_name", "run", "--distribute", "multi_worker"]
        commands.append((argv, env, tmp_path / f"worker{index}.log"))
    statuses = run_bounded(commands, timeout=240)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert statuses == [0, 0], f"exit statuses {statuses}\n" + "\n----\n".join(log[-4000:] for log in logs)
    assert "(chief)" in logs[0] and "(chief)" not in logs[1]

    run_dir = tmp_path / "cluster" / "saved_models" / "run"
    assert (run_dir / "g_enc.keras").exists() and (run_dir / "g_dec.keras").exists()
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == ["images", "saved_models"]
    assert [p.name for p in (tmp_path / "cluster" / "saved_models").iterdir()] == ["run"]
    assert not list(worker_tmp.iterdir())  # the worker's private folder is gone

    # One device on this process's kernel path (the cluster's), and on the other one for the
    # rounding bound: Eigen's blocking, and so its summation order, depends on the CPU's caches, and
    # its rounding moved Adam's state by up to ~1 % (relative) on an AVX2 machine.
    onednn = "0" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "1"
    single = {path: tmp_path / f"single_onednn{path}" for path in ("1", "0")}
    for path, out in single.items():
        _run([["ccyclegan_t2", [*common, "--output_dir", str(out), "--run_name", "run"]]],
             subprocess_env(KERAS_BACKEND="tensorflow", TF_ENABLE_ONEDNN_OPTS=path))
    runs = {path: out / "saved_models" / "run" for path, out in single.items()}
    rounding = kernel_path_spread(runs["1"], runs["0"])
    assert_same_training(runs[onednn], run_dir, steps=3, rounding=rounding)


@pytest.mark.parametrize("flags, message", [
    (["--distribute", "data_parallel"], "--distribute data_parallel needs KERAS_BACKEND=jax"),
    (["--distribute", "multi_worker"], "needs TF_CONFIG"),
    (["--distribute", "pmap"], "choose one of none, mirrored, multi_worker, data_parallel"),
])
def test_unusable_distribution_is_a_one_line_error(tmp_path, synthetic_csv, capsys, flags, message):
    import ccyclegan_t2

    with pytest.raises(SystemExit) as exit_info:
        ccyclegan_t2.main(["--data", str(synthetic_csv), "--output_dir", str(tmp_path), *TINY,
                           "--max_steps", "1", *flags])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
