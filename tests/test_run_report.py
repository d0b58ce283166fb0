"""trainer.RunReport: outputs named at the start, a duration estimate, an early grid, --max_minutes.

The run's clock is faked (10 s per reading) so that minutes pass in a few tiny steps.
"""
import itertools
import json
import types

import numpy as np
import pytest

import ccyclegan_t2
import run_folder
import trainer


def test_a_bounded_run_says_what_it_costs_stops_cleanly_and_resumes(synthetic_csv, tmp_path, capsys,
                                                                     monkeypatch):
    clock = itertools.count(0, 10)
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(time=lambda: float(next(clock))))
    run_dir, images = tmp_path / "saved_models" / "r", tmp_path / "images" / "r"
    common = ["--data", str(synthetic_csv), "--output_dir", str(tmp_path), "--run_name", "r"]
    ccyclegan_t2.main([*common, "--base_filters", "4", "--batch_size", "8", "--max_minutes", "6",
                       "--max_steps", "50", "--sample_interval", "100", "--checkpoint_interval", "100"])
    out = capsys.readouterr().out
    assert f"{run_dir}/checkpoint.npz   every 100 steps" in out
    assert f"{run_dir}/g_enc.keras + g_dec.keras   the generator" in out
    assert f"{images}/step_*.png   sample grids" in out
    assert "timing: " in out and "the full run (200 epochs x 56 steps = 11,200 steps) takes about" in out
    assert "--max_minutes 6 reached at step" in out and "--run_name r --resume" in out

    with np.load(run_dir / run_folder.CHECKPOINT) as archive:
        stopped = json.loads(str(archive["state"]))["step"]
    assert 5 < stopped < 50
    assert f"done: {stopped} steps" in out
    grids = sorted(path.name for path in images.glob("step_*.png"))
    assert len(grids) == 3 and grids[0] == "step_0000000.png" and grids[-1] == f"step_{stopped:07d}.png"
    assert f"early sample grid: {images / grids[1]}" in out
    assert (run_dir / "g_enc.keras").is_file() and (run_dir / "g_dec.keras").is_file()

    ccyclegan_t2.main([*common, "--resume", "--max_minutes", "0", "--max_steps", str(stopped + 2)])
    assert f"done: {stopped + 2} steps" in capsys.readouterr().out
    assert json.loads((run_dir / run_folder.TRAIN_LOG).read_text().splitlines()[-1])["step"] == stopped + 2


@pytest.mark.parametrize("schedule, step_seconds, timing", [
    # --d_g_ratio 5: the first step (G + D) and the second (the first D-only one) compile; the estimate
    # times the 5 steps after them, one G update among them: steps 2-6, (4 x 0.5 + 2.5) / 5
    ({"d_g_ratio": 5}, [30.0, 20.0, 0.5, 0.5, 0.5, 2.5, 0.5, 0.5], "0.90"),
    # --d_warmup_steps 3: steps 0-2 only update D (the first compiles), step 3 is the first full one
    # (it compiles); the estimate times the 5 full steps after it, not the cheaper D-only ones
    ({"d_warmup_steps": 3}, [20.0, 0.3, 0.3, 30.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3], "1.00"),
])
def test_the_estimate_leaves_out_the_compiling_and_d_warmup_steps_and_counts_whole_d_g_cycles(
        schedule, step_seconds, timing, capsys, monkeypatch):
    times = iter(itertools.accumulate([0.0, *step_seconds]))
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(time=lambda: next(times)))
    config = ccyclegan_t2.Config(**schedule, epochs=1, sample_interval=1000, max_minutes=0)
    run = types.SimpleNamespace(config=config, run_dir="r", images_dir="i",
                                parallel=types.SimpleNamespace(describe=lambda: "one device"))
    gan = types.SimpleNamespace(config=config)
    model = types.SimpleNamespace(step=0, g_nets={"g_enc": None, "g_dec": None}, failure=None, stop_training=False,
                                  updates_g=lambda step: trainer.GAN.updates_g(gan, step))
    report = trainer.RunReport(run, model, types.SimpleNamespace(steps_per_epoch=448, last_step=448),
                               types.SimpleNamespace(write=lambda: "grid.png"))
    report.set_model(model)
    for _ in step_seconds:
        model.step += 1
        report.on_train_batch_end(model.step - 1)
    assert f"timing: {timing} s/step on one device" in capsys.readouterr().out
