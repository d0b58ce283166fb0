"""classifier.py: the network's contract, a tiny end-to-end CLI run, and its errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import classifier
from data_loader import REPO_ROOT, to_float
from synthetic_faces import make_synthetic

TINY = ["--width", "8", "--num_blocks", "3", "--dense_units", "32", "--verbose", "0"]


def test_network_takes_faces_and_exposes_features():
    model = classifier.build_classifier(width=8, num_blocks=3, dense_units=24)
    assert tuple(model.input.shape) == (None, 48, 48, 1)
    assert tuple(model.output.shape) == (None, 7)
    assert tuple(model.get_layer("features").output.shape) == (None, 24)
    probabilities = model.predict(to_float(make_synthetic(1)[0]), verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cli_trains_reports_and_saves(synthetic_csv, tmp_path):
    out = tmp_path / "classifier"
    metrics = classifier.main(["--data", str(synthetic_csv), "--epochs", "2", "--out", str(out)]
                              + TINY)
    assert sorted(p.name for p in out.iterdir()) == ["classifier.keras", "metrics.json", "training_log.csv"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert saved["publictest_n"] == 7 * 16 and saved["epochs_run"] == 2
    assert 0.0 <= saved["publictest_accuracy"] <= 1.0
    assert saved["backend"] and saved["date"] and saved["train_n"] + saved["val_n"] == 7 * 64
    model = classifier.load_classifier(out)
    images, labels = make_synthetic(2, seed=9)
    predicted = classifier.predict_labels(model, to_float(images))
    assert predicted.shape == labels.shape and set(predicted) <= set(range(7))


def test_saved_model_loads_on_another_backend(synthetic_judge_path):
    """A judge saved on this backend predicts the same labels on the other one."""
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    images, _ = make_synthetic(3, seed=11)
    here = classifier.predict_labels(classifier.load_classifier(synthetic_judge_path), to_float(images))
    script = ("import sys, numpy as np, classifier, synthetic_faces, data_loader as d;"
              "x = d.to_float(synthetic_faces.make_synthetic(3, seed=11)[0]);"
              "print(' '.join(map(str, classifier.predict_labels("
              "classifier.load_classifier(sys.argv[1]), x))))")
    result = subprocess.run([sys.executable, "-c", script, str(synthetic_judge_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "KERAS_BACKEND": other})
    if result.returncode and f"No module named '{other}'" in result.stderr:
        pytest.skip(f"{other} is not installed")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(label) for label in here]


def test_missing_model_is_one_line_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        classifier.load_classifier(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "classifier.keras") in message
    assert "python classifier.py" in message and "\n" not in message


def test_damaged_model_file_is_one_line_naming_it(tmp_path):
    damaged = tmp_path / "classifier.keras"
    damaged.write_bytes(b"not a keras archive")
    with pytest.raises(ValueError) as err:
        classifier.load_classifier(tmp_path)
    assert str(damaged) in str(err.value) and "\n" not in str(err.value)


def test_missing_data_exits_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        classifier.main(["--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path)] + TINY)
    message = capsys.readouterr().err
    assert err.value.code == 2 and message.count("\n") == 1
    assert message.startswith("error: ") and str(tmp_path / "missing.csv") in message


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch_size", "-4"), ("--batch_size", "0"),
                                         ("--val_fraction", "2"), ("--val_fraction", "0"),
                                         ("--width", "0"), ("--learning_rate", "-1"), ("--seed", "-1")])
def test_bad_settings_exit_with_one_line_before_reading_data(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        classifier.main(["--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out"),
                         flag, value])
    message = capsys.readouterr().err
    assert err.value.code == 2 and message.count("\n") == 1 and flag in message
    assert not (tmp_path / "out").exists()


def test_a_finished_classifier_is_replaced_only_when_asked(synthetic_csv, tmp_path, capsys):
    out = tmp_path / "judge"
    out.mkdir()
    (out / "classifier.keras").write_bytes(b"the committed judge")
    with pytest.raises(SystemExit) as err:
        classifier.main(["--data", str(synthetic_csv), "--epochs", "1", "--out", str(out)] + TINY)
    assert err.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "classifier.keras").read_bytes() == b"the committed judge"


def test_a_stopped_run_continues_where_it_stopped(synthetic_csv, tmp_path):
    """--max_minutes ends a run after an epoch; the same command again finishes it."""
    out = tmp_path / "classifier"
    args = ["--data", str(synthetic_csv), "--epochs", "3", "--out", str(out)] + TINY
    assert classifier.main(args + ["--max_minutes", "1e-6"]) is None
    assert not (out / "classifier.keras").exists() and (out / "checkpoints" / "backup").is_dir()
    metrics = classifier.main(args)
    assert metrics["epochs_run"] == 3 and (out / "classifier.keras").is_file()
    log = (out / "training_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1", "2"]  # one row per epoch, none twice


def test_predict_labels_rejects_wrong_shapes():
    model = classifier.build_classifier(width=8, num_blocks=3, dense_units=16)
    with pytest.raises(ValueError, match="48, 48"):
        classifier.predict_labels(model, np.zeros((2, 32, 32, 1), np.float32))


def test_flip_averaged_judge_reads_both_views_and_saves_whole(tmp_path):
    """The saved judge's features are the mean of the face's and its mirror image's; its verdict
    is the softmax of the mean logits; it reloads (fid.py reads its features layer)."""
    import fid

    model = classifier.build_classifier(width=8, num_blocks=3, dense_units=24)
    judge = classifier.with_flip_averaging(model)
    path = classifier.save_classifier(judge, tmp_path / "classifier.keras")
    reloaded = fid.ClassifierExtractor(classifier.load_classifier(path))
    faces = to_float(make_synthetic(1, seed=4)[0])
    mirrored = faces[:, :, ::-1]
    single = fid.ClassifierExtractor(model)
    expected_features = (single.features_and_predictions(faces)[0]
                         + single.features_and_predictions(mirrored)[0]) / 2
    features, predicted = reloaded.features_and_predictions(faces)
    np.testing.assert_allclose(features, expected_features, rtol=1e-4, atol=1e-5)
    head = model.get_layer("emotion")
    logits = expected_features @ np.asarray(head.kernel) + np.asarray(head.bias)
    np.testing.assert_array_equal(predicted, np.argmax(logits, axis=1))
    assert not np.allclose(single.features_and_predictions(faces)[0], expected_features)  # the views differ


def test_flip_averaging_changes_the_judges_identity():
    """Same weights, other verdicts: cached real statistics must not be shared between the two."""
    import fid

    model = classifier.build_classifier(width=8, num_blocks=3, dense_units=24)
    assert (fid.ClassifierExtractor(model).identity
            != fid.ClassifierExtractor(classifier.with_flip_averaging(model)).identity)
