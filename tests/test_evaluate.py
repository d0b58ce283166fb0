"""evaluate.py: scoring translators on synthetic faces, the training callback, the CLI on a real tiny run."""
import json

import keras
import numpy as np
import pytest

import ccyclegan_t2
import evaluate
import fid
import run_folder
import trainer
from data_loader import load_fer2013, to_float
from synthetic_faces import draw_faces


@pytest.fixture(autouse=True)
def private_stats_dir(tmp_path, monkeypatch):
    """Real-face features are cached under tmp, never in the repo's saved_models/."""
    monkeypatch.setenv("CCYCLEGAN_FID_STATS_DIR", str(tmp_path / "fid_stats"))
    return tmp_path / "fid_stats"


@pytest.fixture(scope="module")
def test_split(synthetic_csv, tmp_path_factory):
    return load_fer2013(synthetic_csv, cache_dir=tmp_path_factory.mktemp("data_cache")).split("PublicTest")


def copy_input(x, target_labels):
    """A generator that ignores the target: the expression never changes, the face is kept."""
    return x


def draw_target(x, target_labels):
    """A generator that draws a synthetic face of the target emotion (another person than x)."""
    return to_float(draw_faces(np.asarray(target_labels), seed=len(x)))


def test_evaluator_tells_a_translator_that_draws_the_target_from_one_that_copies(
        test_split, synthetic_judge_path):
    evaluator = evaluate.Evaluator(test_split, fid.ClassifierExtractor.load(synthetic_judge_path))
    copying, drawing = evaluator(copy_input), evaluator(draw_target)

    happy = drawing["per_emotion"]["Happy"]
    assert (happy["n_real"], happy["n_generated"], happy["kid_subset_size"]) == (16, 6 * 16, 16)
    assert happy["fid_small_n"] == (16 <= evaluator.extractor.dim)
    assert set(drawing["per_emotion"]) == {"Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"}
    # The judge sees the source expression in a copy and the target in a drawing (the judge itself
    # is right on most, not all, synthetic faces: the bounds leave it room).
    assert copying["mean"]["accuracy"] <= 0.15
    assert drawing["mean"]["accuracy"] >= 0.7
    assert drawing["mean"]["kid"] < copying["mean"]["kid"]
    for name, metrics in drawing["per_emotion"].items():
        assert metrics["kid"] < copying["per_emotion"][name]["kid"], name
    # A copy reconstructs its input exactly; a drawing of somebody else does not.
    assert copying["mean"]["rec_l1"] == 0.0
    assert drawing["mean"]["rec_l1"] > 0.05


def test_relative_accuracy_is_accuracy_over_the_real_faces_accuracy():
    assert evaluate.relative_accuracy(0.3, 0.6) == pytest.approx(0.5)
    assert evaluate.relative_accuracy(0.9, 0.9) == pytest.approx(1.0)
    assert evaluate.relative_accuracy(0.4, 0.2) == pytest.approx(2.0)  # above 1: clearer than real faces
    assert evaluate.relative_accuracy(0.5, 0.0) is None and evaluate.relative_accuracy(0.5, None) is None


def test_relative_accuracy_of_known_translators(test_split, synthetic_judge_path):
    """Known answers: translations that ARE the real faces of the target (each used equally often)
    score exactly 1.0 against however well the judge reads them; a translator that always returns
    one face of another emotion scores 0."""
    evaluator = evaluate.Evaluator(test_split, fid.ClassifierExtractor.load(synthetic_judge_path))

    def real_faces_of_target(x, target_labels):
        target = int(target_labels[0])
        faces = evaluator.faces[target]
        # The Evaluator translates in batches; a counter keeps the faces cycling across batches.
        start = counters.get(target, 0)
        counters[target] = start + len(x)
        return to_float(faces[(start + np.arange(len(x))) % len(faces)])

    counters = {}
    record = evaluator(lambda x, t: real_faces_of_target(x, t) if len(set(t)) == 1 else x)
    for name, metrics in record["per_emotion"].items():
        assert metrics["real_accuracy"] > 0, name
        assert metrics["accuracy"] == pytest.approx(metrics["real_accuracy"]), name
        assert metrics["relative_accuracy"] == pytest.approx(1.0), name
    assert record["mean"]["relative_accuracy"] == pytest.approx(1.0)
    assert record["min"]["relative_accuracy"] == pytest.approx(1.0)

    happy_face = to_float(evaluator.faces[3][:1])
    always_happy = evaluator(lambda x, t: np.repeat(happy_face, len(x), axis=0))
    judged_happy = always_happy["per_emotion"]["Happy"]["accuracy"] > 0
    for name, metrics in always_happy["per_emotion"].items():
        if name != "Happy":
            assert metrics["relative_accuracy"] == 0.0, name
    assert always_happy["min"]["relative_accuracy"] == 0.0
    assert always_happy["mean"]["relative_accuracy"] == pytest.approx(
        always_happy["per_emotion"]["Happy"]["relative_accuracy"] / 7) and judged_happy


def test_real_features_are_read_from_the_cache_on_a_second_evaluator(test_split, synthetic_judge_path,
                                                                     private_stats_dir):
    extractor = fid.ClassifierExtractor.load(synthetic_judge_path)
    first = evaluate.Evaluator(test_split, extractor, max_per_class=10)
    assert not any(real.from_cache for real in first.real.values())
    second = evaluate.Evaluator(test_split, extractor, max_per_class=10)
    assert all(real.from_cache and real.n == 10 for real in second.real.values())
    assert len(list(private_stats_dir.iterdir())) == 7


class TinyTranslator(keras.Model):
    """Stands in for the trainer's GAN: a model with `translate` that fit() can train."""

    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(1, 3, padding="same", activation="tanh")

    def call(self, x):
        return self.conv(x)

    def translate(self, x, target_labels):
        return keras.ops.convert_to_numpy(self(x))


def test_callback_appends_metrics_every_n_epochs_and_fills_logs(test_split, synthetic_judge_path, tmp_path):
    model = TinyTranslator()
    model.compile(optimizer="sgd", loss="mae")
    callback = trainer.EvaluationCallback(tmp_path / "run", test_split, synthetic_judge_path, every_epochs=2,
                                          max_per_class=4)
    faces = to_float(test_split.images[:8])
    history = model.fit(faces, faces, batch_size=4, epochs=4, verbose=0, callbacks=[callback])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in records] == [(2, 4), (4, 8)]
    assert records[0]["per_emotion"]["Sad"]["n_real"] == 4 and records[0]["extractor"] == "classifier"
    assert history.history["kid"] == [pytest.approx(r["mean"]["kid"]) for r in records]


def test_cli_evaluates_a_tiny_trained_t2_run(synthetic_csv, synthetic_judge_path, tmp_path, capsys):
    # Train 2 steps of a tiny T2 with the evaluation callback on: its first metrics line.
    ccyclegan_t2.main(["--data", str(synthetic_csv), "--output_dir", str(tmp_path), "--run_name", "tiny",
                       "--base_filters", "4", "--batch_size", "16", "--max_steps", "2", "--epochs", "1",
                       "--sample_interval", "100", "--eval_every", "1", "--classifier", str(synthetic_judge_path)])
    run_dir = tmp_path / "saved_models" / "tiny"
    assert evaluate.main([str(run_dir), "--data", str(synthetic_csv), "--classifier", str(synthetic_judge_path),
                          "--max_per_class", "8"]) == 0
    out = capsys.readouterr().out
    assert "PublicTest, classifier features" in out and "N_real" in out and "appended to" in out

    during, after = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert (during["step"], during["epoch"]) == (2, 1) and during["checkpoint"].endswith("checkpoint.npz")
    assert (after["step"], after["epoch"]) == (2, 1) and after["checkpoint"].endswith(".keras")
    assert after["per_emotion"]["Angry"]["n_real"] == 8 and after["per_emotion"]["Angry"]["n_generated"] == 48
    assert during["per_emotion"]["Angry"]["n_real"] == 16
    for record in (during, after):
        assert 0.0 <= record["mean"]["accuracy"] <= 1.0 and record["mean"]["rec_l1"] > 0
        assert np.isfinite(record["mean"]["kid"])


@pytest.mark.parametrize("make_run, extra, message", [
    (lambda run: None, [], "no such run folder"),
    (lambda run: run.mkdir(), [], "no trained generator here (no config.json)"),
    (lambda run: run.mkdir(), ["--max_per_class", "1"], "max_per_class must be at least 2"),
])
def test_cli_errors_are_one_line_with_exit_2(synthetic_csv, synthetic_judge_path, tmp_path, capsys,
                                             make_run, extra, message):
    run = tmp_path / "run"
    make_run(run)
    argv = [str(run), "--data", str(synthetic_csv), "--classifier", str(synthetic_judge_path), *extra]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_append_metrics_keeps_earlier_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}')  # an earlier writer left no final newline
    run_folder.append_metrics(tmp_path, {"step": 2})
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_non_finite_numbers_are_written_as_null_with_a_flag(tmp_path):
    run_folder.append_metrics(tmp_path, {"step": 3, "mean": {"fid": float("nan"), "kid": float("inf"), "accuracy": 0.5},
                                         "per_emotion": {"Happy": {"fid": float("-inf")}}})
    text = (tmp_path / "metrics.jsonl").read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in {text}"))
    assert record["mean"] == {"fid": None, "fid_nonfinite": True, "kid": None, "kid_nonfinite": True,
                              "accuracy": 0.5}
    assert record["per_emotion"]["Happy"] == {"fid": None, "fid_nonfinite": True}
