"""export.py: the generator as one ONNX / SavedModel graph that gives what Keras gives."""
import numpy as np
import pytest

import data_loader
import export
import synthetic_faces
import run_folder


@pytest.fixture(scope="module")
def faces_and_targets():
    faces = synthetic_faces.draw_faces([0, 3, 5, 6], seed=2)
    return data_loader.to_float(faces), np.array([3, 5, 0, 1], np.int32)


def keras_translations(run_dir, faces, targets):
    return run_folder.load_translator(run_dir).translate(faces, targets)


def test_onnx_runs_in_onnxruntime_like_keras(tiny_generator, faces_and_targets, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "generator.onnx"
    assert export.main([str(tiny_generator), "--format", "onnx", "--out", str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["face", "target_emotion"]
    faces, targets = faces_and_targets
    (onnx_out,) = session.run(None, {"face": faces, "target_emotion": targets})
    np.testing.assert_allclose(onnx_out, keras_translations(tiny_generator, faces, targets), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.onnx"]  # no staging left


def test_savedmodel_serves_like_keras(tiny_generator, faces_and_targets, tmp_path):
    tf = pytest.importorskip("tensorflow")
    out = tmp_path / "savedmodel"
    assert export.main([str(tiny_generator), "--format", "savedmodel", "--out", str(out)]) == 0
    faces, targets = faces_and_targets
    loaded = tf.saved_model.load(str(out))  # kept: its variables die with it
    served = loaded.serve([tf.constant(faces), tf.constant(targets)])
    np.testing.assert_allclose(np.asarray(served), keras_translations(tiny_generator, faces, targets), atol=1e-4)


def test_bad_input_is_one_error_line_and_writes_nothing(tiny_generator, tmp_path, capsys):
    assert export.main([str(tmp_path / "no_run"), "--out", str(tmp_path / "a.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'no_run' / 'config.json'}: not a run folder (no config.json)"
    (tmp_path / "taken.onnx").write_text("mine")
    assert export.main([str(tiny_generator), "--out", str(tmp_path / "taken.onnx")]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {tmp_path / 'taken.onnx'}: already exists")
    assert (tmp_path / "taken.onnx").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.onnx"]
