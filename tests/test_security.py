"""No file in a run folder can make an entry point import or run code.

A downloaded run folder is data. Its config.json names the experiment that trained it; the tools
import only registered experiment scripts from this repository (experiments.py), read checkpoints
without pickle, and load `.keras` files in Keras' safe mode. Each attack below plants a payload that
would write a marker file if it ever ran, puts the payload's directory on PYTHONPATH (so that an
import by name would find it), runs an entry point in a subprocess, and checks: exit status 2, one
`error:` line, no marker.
"""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ccyclegan_t1
import synthetic_faces

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--base_filters", "4", "--batch_size", "8", "--max_steps", "1"]


@pytest.fixture
def attack(tmp_path):
    """A folder on PYTHONPATH holding payload modules under several names, and the marker's path."""
    root, marker = tmp_path / "attack", tmp_path / "PWNED"
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
    for module in ("runs/evil/payload.py", "this.py", "ccyclegan_t1.py", "payload.py"):
        (root / module).parent.mkdir(parents=True, exist_ok=True)
        (root / module).write_text(payload)
    for package in ("runs", "runs/evil"):
        (root / package / "__init__.py").write_text("")
    return root, marker


def experiment_names(root):
    """config.json "experiment" values that would import a payload: dotted, relative and absolute
    paths, a name shadowing a stdlib module (`this`, which runs code on import)."""
    return ["runs.evil.payload", "runs/evil/payload", "../attack/payload", str(root / "payload.py"),
            str(root / "payload"), "this"]


def run_folder_with(path, experiment, config=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({**(config or {}), "experiment": experiment}))
    (path / "metrics.jsonl").write_text(json.dumps({"step": 1, "mean": {"fid": 1.0, "kid": 0.1}}) + "\n")
    return path


def run(argv, attack_root, cwd):
    env = {**os.environ, "PYTHONPATH": f"{attack_root}{os.pathsep}{REPO}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def assert_refused(result, marker):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    assert not marker.exists()


@pytest.fixture
def face(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(synthetic_faces.draw_faces([3], seed=1)[0]).save(path)
    return path


def test_translate_evaluate_and_compare_runs_refuse_unknown_experiments(tmp_path, attack, face, synthetic_csv):
    root, marker = attack
    for number, name in enumerate(experiment_names(root)):
        run_dir = run_folder_with(tmp_path / "runs" / f"run{number}", name)
        out = tmp_path / f"grid{number}.png"
        commands = [
            [str(REPO / "translate.py"), str(face), "--no_detect", "--generator", str(run_dir), "--out", str(out)],
            [str(REPO / "evaluate.py"), str(run_dir), "--data", str(synthetic_csv),
             "--classifier", str(tmp_path / "judge.keras")],
            [str(REPO / "compare_runs.py"), str(run_dir), "--out", str(tmp_path / "log")],
        ]
        for argv in commands:
            result = run(argv, root, cwd=tmp_path / "runs")
            assert_refused(result, marker)
            assert "unknown experiment" in result.stderr
        assert not out.exists() and not (tmp_path / "log").exists()
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # nothing appended


def test_a_registered_name_shadowed_on_the_path_is_not_imported(attack):
    root, marker = attack  # root holds a ccyclegan_t1.py payload and comes first on sys.path here
    result = subprocess.run([sys.executable, "-c", "import experiments; experiments.load('ccyclegan_t1')"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=120)
    assert "would be imported from" in result.stderr and str(root) in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("script", ["ccyclegan_t1.py", "ccyclegan_t2.py"])
def test_resume_refuses_a_run_of_another_experiment(tmp_path, attack, synthetic_csv, script):
    root, marker = attack
    run_dir = run_folder_with(tmp_path / "out" / "saved_models" / "evil", "runs.evil.payload")
    (run_dir / "checkpoint.npz").write_bytes(b"")
    result = run([str(REPO / script), "--output_dir", str(tmp_path / "out"), "--run_name", "evil",
                  "--resume", "--data", str(synthetic_csv)], root, cwd=tmp_path)
    assert_refused(result, marker)
    assert "cannot be resumed by this script" in result.stderr


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling calls pathlib.Path(marker).write_text("pwned")
        return pathlib.Path(self.marker).write_text.__func__, (pathlib.Path(self.marker), "pwned")


def test_resume_refuses_a_pickled_checkpoint(tmp_path, attack, synthetic_csv):
    root, marker = attack
    config = dataclasses.asdict(ccyclegan_t1.Config(data=str(synthetic_csv), base_filters=4, batch_size=8,
                                                    run_name="evil", output_dir=str(tmp_path / "out")))
    run_dir = run_folder_with(tmp_path / "out" / "saved_models" / "evil", "ccyclegan_t1", config)
    np.savez(run_dir / "checkpoint.npz", state=np.array(json.dumps({"step": 1, "steps_per_epoch": 3})),
             payload=np.array([_Payload(marker)], dtype=object))
    result = run([str(REPO / "ccyclegan_t1.py"), "--output_dir", str(tmp_path / "out"), "--run_name", "evil",
                  "--resume", *TINY], root, cwd=tmp_path)
    assert_refused(result, marker)
    assert "not a readable checkpoint" in result.stderr


def test_a_keras_file_with_python_code_is_refused(tmp_path, attack, face, synthetic_csv, synthetic_judge_path):
    import keras

    root, marker = attack
    run_dir = run_folder_with(tmp_path / "runs" / "lambda", "ccyclegan_t1",
                              dataclasses.asdict(ccyclegan_t1.Config(base_filters=4)))
    images = keras.Input((48, 48, 1))
    write_marker = keras.layers.Lambda(
        lambda x, path=str(marker): (__import__("pathlib").Path(path).write_text("pwned"), x)[1])
    keras.Model(images, write_marker(images)).save(run_dir / "generator.keras")
    marker.unlink()  # building the model ran the lambda once, here
    out = tmp_path / "grid.png"
    for argv in ([str(REPO / "translate.py"), str(face), "--no_detect", "--generator", str(run_dir),
                  "--out", str(out)],
                 [str(REPO / "evaluate.py"), str(run_dir), "--data", str(synthetic_csv),
                  "--classifier", str(synthetic_judge_path), "--max_per_class", "2"]):
        result = run(argv, root, cwd=tmp_path)
        assert_refused(result, marker)
        assert "generator.keras" in result.stderr and "Lambda" in result.stderr
    assert not out.exists()
