"""The trainer end to end on tiny networks: CLI, run folder, resume, NaN guard, translators, backends.

Runs happen in this process (TensorFlow, see conftest) unless a test needs another backend or the
real command line; networks have 4 base filters and data is 4 synthetic faces per emotion, so a
run of a few steps takes seconds.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import ccyclegan_t1
import ccyclegan_t2
import data_loader
import run_folder
import synthetic_faces
import train_config
import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--base_filters", "4", "--batch_size", "8", "--sample_interval", "2", "--checkpoint_interval", "1"]


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """28 Training faces (3 batches of 8 per epoch) and 14 PublicTest faces."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    return synthetic_faces.write_synthetic_csv(path, train_per_class=4, test_per_class=2, seed=3)


def run(experiment, tmp_path, *args):
    """The experiment script's main in this process; returns the exit status (0 when it returns normally)."""
    try:
        experiment.main(["--output_dir", str(tmp_path), *map(str, args)])
    except SystemExit as exit:
        return exit.code
    return 0


def arrays(run_dir):
    with np.load(pathlib.Path(run_dir) / run_folder.CHECKPOINT) as archive:
        return {k: archive[k] for k in archive.files}


def log(run_dir):
    return [json.loads(line) for line in (pathlib.Path(run_dir) / run_folder.TRAIN_LOG).read_text().splitlines()]


# T1 with G updated on every 2nd step (and G's moving average, on by default)
T1_SCHEDULE = ["--d_g_ratio", "2"]


@pytest.fixture(scope="module")
def straight_t1(tiny_csv, tmp_path_factory):
    """A 5-step T1 run, uninterrupted (crosses the epoch boundary after step 3)."""
    root = tmp_path_factory.mktemp("straight")
    assert run(ccyclegan_t1, root, "--data", tiny_csv, "--run_name", "r", "--max_steps", 5, *TINY,
               *T1_SCHEDULE) == 0
    return root


def test_run_folder_holds_config_log_tensorboard_checkpoint_generator_and_grids(straight_t1):
    run_dir, images = straight_t1 / "saved_models" / "r", straight_t1 / "images" / "r"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["experiment"] == "ccyclegan_t1" and config["base_filters"] == 4
    records = log(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in records] == [0, 0, 0, 1, 1]
    assert {"D/adv", "D/cls", "G/adv", "G/cls", "G/cyc", "G/id", "G/total"} <= set(records[0])
    assert [any(k.startswith("G/") for k in r) for r in records] == [True, False, True, False, True]
    assert all(np.isfinite(r["D/total"]) for r in records)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads(str(arrays(run_dir)["state"]))["step"] == 5
    assert (run_dir / "generator.keras").is_file() and not (run_dir / "d.keras").exists()
    assert (run_dir / "raw" / "generator.keras").is_file()  # G itself; the one above is its EMA
    grids = sorted(p.name for p in images.glob("*.png"))
    assert grids == ["step_0000000.png", "step_0000002.png", "step_0000004.png", "step_0000005.png"]
    assert not list(run_dir.glob("*.tmp*")) and not list(images.glob("*.tmp*"))


def test_resume_continues_exactly_like_an_uninterrupted_run(straight_t1, tiny_csv, tmp_path):
    """Also with G's moving average and a D-only step on either side of the interruption."""
    args = ["--data", tiny_csv, "--run_name", "r", *TINY, *T1_SCHEDULE]
    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 2) == 0
    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 5, "--resume") == 0
    resumed, straight = arrays(tmp_path / "saved_models" / "r"), arrays(straight_t1 / "saved_models" / "r")
    assert resumed.keys() == straight.keys()
    for key in straight:  # G, D, both Adams (moments, G's moving average, iteration counts) and the step
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    without_time = lambda records: [{k: v for k, v in r.items() if k != "time"} for r in records]  # noqa: E731
    assert without_time(log(tmp_path / "saved_models" / "r")) == without_time(log(straight_t1 / "saved_models" / "r"))


def test_resume_refuses_changed_networks_and_a_reused_run_folder(straight_t1, tiny_csv, capsys):
    args = ["--data", tiny_csv, "--run_name", "r", *TINY, *T1_SCHEDULE]
    assert run(ccyclegan_t1, straight_t1, *args) == 2
    assert "run folder exists; pass --resume" in capsys.readouterr().err
    assert run(ccyclegan_t1, straight_t1, *args, "--resume", "--base_filters", 8) == 2
    assert "--base_filters 8 differs from the run's 4" in capsys.readouterr().err
    assert run(ccyclegan_t1, straight_t1, "--run_name", "absent", "--resume") == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_load_translator_matches_the_trained_model(straight_t1, tiny_csv):
    translator = run_folder.load_translator(straight_t1 / "saved_models" / "r")
    faces, labels = data_loader.fixed_faces(data_loader.load_fer2013(tiny_csv).split("PublicTest"))
    out = translator.translate(faces, (labels + 2) % 7)
    assert out.shape == (7, 48, 48, 1) and out.dtype == np.float32
    assert np.all(np.abs(out) <= 1)
    model = trainer.build_model(ccyclegan_t1, translator.config)
    trainer.load_checkpoint(model, straight_t1 / "saved_models" / "r")
    np.testing.assert_allclose(model.translate(faces, (labels + 2) % 7), out, atol=1e-5)  # both the EMA
    np.testing.assert_allclose(model.reconstruct(faces, labels), translator.reconstruct(faces, labels),
                               atol=1e-5)
    with pytest.raises(run_folder.RunFolderError, match="no trained generator here"):
        run_folder.load_translator(straight_t1)


def test_init_generator_starts_g_and_its_average_from_a_saved_generator_and_d_afresh(straight_t1, tiny_csv,
                                                                                     tmp_path):
    """A new run from straight_t1's generator (its moving average): during --d_warmup_steps 2 only D
    learns, so G, its average and the saved generator are still the saved one's weights; step 2 is
    the first to update G (then every --d_g_ratio 2nd)."""
    source = straight_t1 / "saved_models" / "r"
    args = ["--data", tiny_csv, "--run_name", "w", "--init_generator", source, "--d_warmup_steps", 2,
            *TINY, *T1_SCHEDULE]
    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 2) == 0
    run_dir = tmp_path / "saved_models" / "w"
    saved = run_folder.load_translator(source).nets["generator"].get_weights()
    warm = arrays(run_dir)
    for i, weight in enumerate(saved):
        np.testing.assert_array_equal(warm[f"net/generator/{i}"], weight)
    for folder in (run_dir, run_dir / run_folder.RAW_GENERATOR):  # G's moving average, and G itself
        for ours, weight in zip(run_folder.load_translator(folder).nets["generator"].get_weights(), saved):
            np.testing.assert_array_equal(ours, weight)
    assert not any(k.startswith("G/") for record in log(run_dir) for k in record)
    straight = arrays(source)
    assert any(not np.array_equal(warm[k], straight[k]) for k in straight if k.startswith("net/d/"))

    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 5, "--resume") == 0
    assert [any(k.startswith("G/") for k in r) for r in log(run_dir)] == [False, False, True, False, True]
    assert any(not np.array_equal(arrays(run_dir)[f"net/generator/{i}"], w) for i, w in enumerate(saved))


def test_init_generator_refuses_another_experiment_or_shape_in_one_line_and_writes_nothing(
        straight_t1, tiny_csv, tmp_path, capsys):
    source = straight_t1 / "saved_models" / "r"
    cases = {(ccyclegan_t2, source, 4): "a generator of ccyclegan_t1; --init_generator needs one of ccyclegan_t2",
             (ccyclegan_t1, source, 8): "generator.keras: does not match this run's generator",
             (ccyclegan_t1, tmp_path / "absent", 4): "absent: --init_generator folder not found"}
    for (experiment, folder, width), message in cases.items():
        assert run(experiment, tmp_path / "out", "--data", tiny_csv, "--init_generator", folder, *TINY,
                   "--base_filters", width) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
        assert not (tmp_path / "out").exists()


def test_t2_saves_encoder_and_decoder_and_logs_its_terms(tiny_csv, tmp_path):
    assert run(ccyclegan_t2, tmp_path, "--data", tiny_csv, "--max_steps", 2, *TINY) == 0
    run_dir = tmp_path / "saved_models" / "t2"
    assert (run_dir / "g_enc.keras").is_file() and (run_dir / "g_dec.keras").is_file()
    assert {"D/adv", "D/cls", "G/adv", "G/cls", "G/rec"} <= set(log(run_dir)[0])  # step 1 updates G
    translator = run_folder.load_translator(run_dir)
    assert translator.translate(np.zeros((3, 48, 48, 1), np.float32), 5).shape == (3, 48, 48, 1)


def test_nan_guard_names_step_and_term_and_keeps_the_last_good_checkpoint(
        tiny_csv, tmp_path, monkeypatch, capsys):
    clean_stream = trainer.batch_stream

    def poisoned(experiment, batches, seed, epoch, skip):
        for index, (images, labels, targets) in enumerate(clean_stream(experiment, batches, seed, epoch, skip)):
            if epoch * batches.steps_per_epoch + skip + index == 2:  # the 3rd step
                images = np.full_like(images, np.nan)
            yield images, labels, targets

    monkeypatch.setattr(trainer, "batch_stream", poisoned)
    assert run(ccyclegan_t1, tmp_path, "--data", tiny_csv, "--max_steps", 5, *TINY) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: non-finite loss at step 3: D/adv = nan")
    assert "last good checkpoint" in error and "(step 2)" in error
    run_dir = tmp_path / "saved_models" / "t1"
    saved = arrays(run_dir)
    assert json.loads(str(saved["state"]))["step"] == 2
    assert all(np.all(np.isfinite(v)) for k, v in saved.items() if k != "state")
    assert not (run_dir / "generator.keras").exists()


def test_bad_command_line_input_is_one_error_line_and_exit_status_2(tiny_csv, tmp_path, capsys):
    cases = {
        ("--data", tmp_path / "missing.csv"): "missing.csv: no such file or folder",
        ("--data", tiny_csv, "--batch_size", 0): "--batch_size must be at least 1",
        ("--data", tiny_csv, "--batch_size", 100): "fewer than one batch of 100",
        ("--data", tiny_csv, "--epochs", "many"): "argument --epochs: invalid int value",
        ("--data", tiny_csv, "--no_such_flag"): "unrecognized arguments: --no_such_flag",
        ("--data", tiny_csv, "--eval_every", 1): "--eval_every needs --classifier",
        ("--data", tiny_csv, "--d_g_ratio", 0): "--d_g_ratio must be at least 1",
        ("--data", tiny_csv, "--ema_decay", 1): "--ema_decay must be less than 1",
        ("--data", tiny_csv, "--eval_every", 1, "--classifier", tmp_path / "c.keras"): "classifier file not found",
    }
    for args, message in cases.items():
        assert run(ccyclegan_t2, tmp_path, *args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (args, err)


def test_cli_help_and_missing_data_from_the_shell(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    shown = subprocess.run([sys.executable, "ccyclegan_t2.py", "--help"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0
    for flag in ("--epochs", "--batch_size", "--sample_interval", "--max_steps", "--data", "--run_name",
                 "--seed", "--resume", "--demo", "--eval_every", "--classifier", "--base_filters",
                 "--d_gan_loss_w", "--d_cl_loss_w", "--g_gan_loss_w", "--g_cl_loss_w", "--rec_loss_w",
                 "--adam_lr", "--adam_beta_1", "--adam_beta_2"):
        assert flag in shown.stdout, flag
    failed = subprocess.run([sys.executable, "ccyclegan_t1.py", "--data", str(tmp_path / "nope.csv")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nope.csv'}: no such file")


def test_demo_writes_synthetic_faces_and_uses_small_networks(tmp_path):
    assert run(ccyclegan_t2, tmp_path, "--demo", "--max_steps", 1, "--run_name", "demo") == 0
    config = json.loads((tmp_path / "saved_models" / "demo" / "config.json").read_text())
    assert config["base_filters"] == ccyclegan_t2.Config.DEMO["base_filters"] and config["max_steps"] == 1
    assert pathlib.Path(config["data"]) == tmp_path / "datasets" / "synthetic_faces.csv"
    demo_faces = train_config.TrainConfig.DEMO_FACES["train_per_class"]
    assert len(data_loader.load_fer2013(config["data"]).split("Training")) == 7 * demo_faces


BACKEND_STEP = """
import sys, pathlib, numpy as np
import importlib, run_folder, trainer
init, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ("ccyclegan_t1", "ccyclegan_t2"):
    experiment = importlib.import_module(name)
    model = trainer.build_model(experiment, experiment.Config(base_filters=4, batch_size=4, d_g_ratio=2))
    if (init / name / run_folder.CHECKPOINT).exists():
        trainer.load_checkpoint(model, init / name)
    else:
        (init / name).mkdir(parents=True)
        trainer.save_checkpoint(model, init / name, {"step": 0})
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (4, 48, 48, 1)).astype("float32")
    labels = np.array([0, 3, 5, 6], "int32")
    batches = [(images, labels, experiment.draw_targets(labels, rng)) for _ in range(3)]
    model.fit((b for b in batches), epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
    (out / name).mkdir(parents=True)
    trainer.save_checkpoint(model, out / name, {"step": 3})
"""


def test_two_steps_agree_across_tensorflow_jax_and_torch(tmp_path):
    """From the same weights, three train steps (full, D-only, full) give the same G, D, Adam and
    moving-average states on every backend installed (torch is optional): the per-backend gradient
    code computes one algorithm."""
    backends = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
               "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", BACKEND_STEP, str(tmp_path / "init"),
                               str(tmp_path / backend)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    for name in ("ccyclegan_t1", "ccyclegan_t2"):
        start, reference = arrays(tmp_path / "init" / name), arrays(tmp_path / "tensorflow" / name)
        moved = max(np.abs(reference[k] - start[k]).max() for k in reference if k.startswith("net/"))
        assert moved > 1e-4  # two Adam steps of lr 2e-4 moved the weights
        for backend in backends[1:]:
            other = arrays(tmp_path / backend / name)
            for key in reference:
                if key != "state":
                    np.testing.assert_allclose(other[key], reference[key], atol=1e-4, rtol=1e-3,
                                               err_msg=f"{name} {backend} {key}")


def test_eval_every_adds_the_evaluation_callback(tiny_csv, synthetic_judge_path, tmp_path):
    assert run(ccyclegan_t2, tmp_path, "--data", tiny_csv, "--max_steps", 2, "--eval_every", 1,
               "--classifier", synthetic_judge_path, *TINY) == 0
    records = [json.loads(line) for line in
               (tmp_path / "saved_models" / "t2" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 2


def test_d_g_ratio_updates_g_on_every_kth_step_and_its_average_follows_the_formula():
    """7 steps at d_g_ratio 3: D is updated 7 times, G 3 times (steps 0, 3, 6) and not in between;
    G's average after its n-th update (n from 0) is d * average + (1 - d) * G with
    d = min(decay, (1 + n) / (10 + n)), starting from G's initial weights."""
    import keras
    decay = 0.75
    model = trainer.build_model(ccyclegan_t2, ccyclegan_t2.Config(base_filters=4, batch_size=4, d_g_ratio=3,
                                                                  ema_decay=decay))
    weights = lambda variables: [keras.ops.convert_to_numpy(v).copy() for v in variables]  # noqa: E731
    g_after, d_after, logged = [weights(model.g_variables)], [weights(model.d_variables)], []

    def record(batch, logs):
        g_after.append(weights(model.g_variables))
        d_after.append(weights(model.d_variables))
        logged.append(set(logs))
    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 4, 6], np.int32)
    batches = [(rng.uniform(-1, 1, (4, 48, 48, 1)).astype(np.float32), labels,
                ccyclegan_t2.draw_targets(labels, rng)) for _ in range(7)]
    model.fit((b for b in batches), epochs=1, steps_per_epoch=7, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=record)])

    assert model.step == 7
    assert int(model.d_optimizer.iterations) == 7 and int(model.g_optimizer.iterations) == 3
    changed = lambda snapshots, i: any(not np.array_equal(a, b) for a, b in zip(snapshots[i], snapshots[i + 1]))  # noqa: E731
    assert [changed(g_after, i) for i in range(7)] == [True, False, False, True, False, False, True]
    assert all(changed(d_after, i) for i in range(7))
    assert [any(k.startswith("G/") for k in keys) for keys in logged] == [True, False, False, True, False, False, True]
    expected = g_after[0]
    for updates, step in enumerate((1, 4, 7)):
        d = min(decay, (1 + updates) / (10 + updates))
        expected = [d * e + (1 - d) * w for e, w in zip(expected, g_after[step])]
    for average, value in zip(weights(model._averages()), expected):
        np.testing.assert_allclose(average, value, rtol=1e-6, atol=1e-7)
    ema_weights = [w for net in model.generator().values() for w in weights(net.trainable_variables)]
    for used, value in zip(ema_weights, expected):  # grids, evaluation and the saved generator
        np.testing.assert_allclose(used, value, rtol=1e-6, atol=1e-7)


class ScriptedEvaluation:
    """Stands in for trainer.EvaluationCallback: puts the next scripted scores into the epoch logs."""

    def __init__(self, scores):
        self.scores = iter(scores)

    def __call__(self, run):
        import keras
        return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(next(self.scores)))


def test_keep_best_writes_the_generator_of_the_best_evaluation_into_best(tiny_csv, tmp_path, monkeypatch,
                                                                          capsys):
    # 3 epochs of 3 steps: the minimum relative accuracy rises, then ties; KID breaks the tie
    scores = [{"min_relative_accuracy": 0.2, "kid": 0.1}, {"min_relative_accuracy": 0.5, "kid": 0.3},
              {"min_relative_accuracy": 0.5, "kid": 0.2}]
    monkeypatch.setattr(trainer, "_evaluation_callback", ScriptedEvaluation(scores))
    classifier = tmp_path / "judge.keras"
    classifier.write_bytes(b"")
    assert run(ccyclegan_t1, tmp_path, "--data", tiny_csv, "--max_steps", 9, "--eval_every", 1,
               "--classifier", classifier, *TINY, *T1_SCHEDULE) == 0
    best_dir = tmp_path / "saved_models" / "t1" / "best"
    assert json.loads((best_dir / "best.json").read_text()) == {"step": 9, "epoch": 3, "scores": scores[2]}
    assert run_folder.load_translator(best_dir).translate(np.zeros((2, 48, 48, 1), np.float32), 3).shape == (
        2, 48, 48, 1)  # the tools take best/ (and raw/) for a run folder
    out = capsys.readouterr().out
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("best so far")] == [
        "best so far: step 3", "best so far: step 6", "best so far: step 9"]
    assert f"the best one (step 9) in {best_dir}" in out


def test_a_run_folder_older_than_the_schedule_and_ema_flags_resumes_as_it_trained(tiny_csv, tmp_path):
    args = ["--data", tiny_csv, "--run_name", "old", *TINY]
    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 1, "--ema_decay", 0, "--g_base_filters", 4) == 0
    config_path = tmp_path / "saved_models" / "old" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({k: v for k, v in config.items()
                                       if k not in ("d_g_ratio", "ema_decay", "g_base_filters")}))
    assert run(ccyclegan_t1, tmp_path, *args, "--max_steps", 2, "--resume") == 0
    resumed = json.loads(config_path.read_text())
    assert (resumed["d_g_ratio"], resumed["ema_decay"], resumed["g_base_filters"]) == (1, 0.0, 4)
