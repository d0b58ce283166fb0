"""sweep.py: KerasTuner sweeps whose trials are ordinary runs scored by KID; resumable, distributable."""
import dataclasses
import json
import pathlib
import sys

import pytest

import compare_runs
import sweep
import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--base_filters", "4", "--batch_size", "8", "--max_steps", "2", "--sample_interval", "100"]


def sweep_args(directory, synthetic_csv, judge, *extra):
    return ["ccyclegan_t2", "--directory", str(directory), "--objective", "kid",
            "--stats_dir", str(directory / "fid_stats"), "--data", str(synthetic_csv),
            "--classifier", str(judge), *TINY, *extra]


def oracle_trials(directory):
    trials = [json.loads(path.read_text()) for path in (directory / "tuner").glob("trial_*/trial.json")]
    return {t["trial_id"]: t for t in trials}


def test_grid_sweep_trains_scores_and_resumes(tmp_path, synthetic_csv, synthetic_judge_path, capsys,
                                              monkeypatch):
    directory = tmp_path / "sweep"
    args = sweep_args(directory, synthetic_csv, synthetic_judge_path, "--algorithm", "grid",
                      "--space", "adam_lr=1e-4,2e-4,4e-4", "--space", "rec_loss_w=5")

    # The first attempt is killed after 1 of trial 0's 2 steps (its checkpoint written)...
    def killed_after_one_step(run):
        train(run._replace(config=dataclasses.replace(run.config, max_steps=1)))
        raise KeyboardInterrupt
    train = trainer.train
    monkeypatch.setattr(trainer, "train", killed_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        sweep.main([*args, "--max_trials", "2"])
    monkeypatch.setattr(trainer, "train", train)
    capsys.readouterr()
    # ...and the same command continues trial 0 from its checkpoint, then trains trial 1.
    assert sweep.main([*args, "--max_trials", "2"]) == 0
    assert "trial_0 at step 1" in capsys.readouterr().out
    runs = sorted((directory / "saved_models").iterdir())
    assert [run.name for run in runs] == ["trial_0", "trial_1"]
    trials = oracle_trials(directory)
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        trial = trials[run.name.removeprefix("trial_")]
        assert trial["status"] == "COMPLETED"
        values = trial["hyperparameters"]["values"]
        assert (config["adam_lr"], config["rec_loss_w"]) == (values["adam_lr"], values["rec_loss_w"])
        assert f"adam_lr={values['adam_lr']:g}" in config["notes"]
        # The trial's score is the KID that EvaluationCallback appended after its last step.
        [record] = compare_runs.load_run(run).records
        assert record["step"] == 2
        assert trial["score"] == pytest.approx(record["mean"]["kid"])
    assert {t["hyperparameters"]["values"]["adam_lr"] for t in trials.values()} == {1e-4, 2e-4}
    table = compare_runs.markdown_table([compare_runs.load_run(run) for run in runs])
    assert "trial_0" in table and "trial_1" in table

    # The same command again trains nothing; a larger --max_trials trains only the new trial.
    logs = {run.name: (run / "train_log.jsonl").read_text() for run in runs}
    assert sweep.main([*args, "--max_trials", "2"]) == 0
    assert sweep.main([*args, "--max_trials", "3"]) == 0
    for run in runs:
        assert (run / "train_log.jsonl").read_text() == logs[run.name]
        assert len(compare_runs.load_run(run).records) == 1
    trials = oracle_trials(directory)
    assert sorted(trials) == ["0", "1", "2"] and trials["2"]["status"] == "COMPLETED"
    assert trials["2"]["hyperparameters"]["values"]["adam_lr"] == 4e-4


def test_bayes_sweep_samples_ranges(tmp_path, synthetic_csv, synthetic_judge_path):
    directory = tmp_path / "bayes"
    assert sweep.main(sweep_args(directory, synthetic_csv, synthetic_judge_path, "--algorithm", "bayes",
                                 "--max_trials", "1", "--space", "g_cl_loss_w=0.1:10")) == 0
    [trial] = oracle_trials(directory).values()
    assert trial["status"] == "COMPLETED" and 0.1 <= trial["hyperparameters"]["values"]["g_cl_loss_w"] <= 10
    assert (directory / "saved_models" / "trial_0" / "metrics.jsonl").exists()


@pytest.mark.parametrize("extra, message", [
    (["--space", "data=a,b"], "'data' is not a numeric flag of ccyclegan_t2"),
    (["--space", "adam_lr=1e-4:1e-3"], "a grid needs values"),
    (["--space", "adam_lr=fast"], "expected NAME=V1,V2,... or NAME=LOW:HIGH with float values"),
    (["--run_name", "mine"], "--run_name: set by the sweep"),
    (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag"),
    (["--distribute", "multi_worker"], "KerasTuner's chief/worker mode"),
])
def test_bad_sweep_input_is_a_one_line_error(tmp_path, synthetic_csv, capsys, extra, message):
    assert sweep.main(sweep_args(tmp_path / "s", synthetic_csv, tmp_path / "judge.keras", *extra)) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]


def test_a_trial_that_cannot_start_stops_the_sweep_with_its_error(tmp_path, synthetic_csv, capsys):
    assert sweep.main(sweep_args(tmp_path / "s", synthetic_csv, tmp_path / "missing.keras")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "trial 0" in error[0] and "missing.keras" in error[0]


def test_a_sweep_folder_refuses_other_settings(tmp_path, synthetic_csv, capsys):
    directory = tmp_path / "s"
    directory.mkdir()
    (directory / sweep.SWEEP_FILE).write_text(json.dumps(
        {"experiment": "ccyclegan_t2", "algorithm": "grid", "objective": "fid"}))
    assert sweep.main(sweep_args(directory, synthetic_csv, tmp_path / "judge.keras")) == 2
    assert "another objective ('fid', now 'kid')" in capsys.readouterr().err


def test_chief_and_worker_on_loopback_finish_the_sweep(tmp_path, synthetic_csv, synthetic_judge_path,
                                                      subprocess_env, free_ports, run_bounded):
    directory = tmp_path / "distributed"
    [port] = free_ports(1)
    argv = [sys.executable, str(REPO / "sweep.py"),
            *sweep_args(directory, synthetic_csv, synthetic_judge_path, "--algorithm", "grid",
                        "--space", "adam_lr=1e-4,2e-4")]
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    statuses = run_bounded([(argv, subprocess_env(KERAS_BACKEND="tensorflow", KERASTUNER_TUNER_ID=tuner, **oracle),
                             tmp_path / f"{tuner}.log") for tuner in ("chief", "tuner0")], timeout=240)
    logs = {tuner: (tmp_path / f"{tuner}.log").read_text() for tuner in ("chief", "tuner0")}
    assert statuses == [0, 0], f"exit statuses {statuses}\n" + "\n----\n".join(
        log[-4000:] for log in logs.values())
    trials = oracle_trials(directory)
    assert sorted(trials) == ["0", "1"] and {t["status"] for t in trials.values()} == {"COMPLETED"}
    assert "done: 2 steps" in logs["tuner0"] and "done:" not in logs["chief"]
    assert "Results summary" in logs["chief"]
    for trial_id in trials:
        assert (directory / "saved_models" / f"trial_{trial_id}" / "metrics.jsonl").exists()
