"""Bad, damaged and hostile inputs through the real entry points: one table, one case a line of the spec.

Each case builds its bad input and the command line (`script.py` + arguments), and states the exit
status and a regex for the message. The runner checks what every case promises:
- exit 2: stderr is exactly one line, `error: ...`, matching the regex; no traceback; nothing written
  into `env.out` (where the case points the command's outputs);
- exit 0: the regex matches a line of the output (a warning, a note), and no traceback;
- `check(env, stdout)`, when given: what must hold afterwards (the cache was rebuilt, nothing was lost).

Cases run `python <script>` in a subprocess, except those marked `keras=True`: they need Keras, whose
TensorFlow import costs 10-30 s per process on the shared 2-core machine, so the runner calls the
script's `main(argv)` in this process (which has TensorFlow loaded already). Every case gets its own
data cache and real-feature cache folders ($CCYCLEGAN_CACHE_DIR, $CCYCLEGAN_FID_STATS_DIR).

Adding a case is adding one `Case(...)` to CASES.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import data_loader
import synthetic_faces

REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Env:
    tmp: pathlib.Path          # scratch: the case's inputs
    out: pathlib.Path          # where the case points the command's outputs; stays empty on exit 2
    csv: pathlib.Path          # a small synthetic FER2013 CSV (Training 64, PublicTest 16 faces per emotion)
    classifier: pathlib.Path   # an untrained tiny expression classifier (.keras)
    generator: pathlib.Path    # the run folder of a tiny T2 trained for 2 steps
    environ: dict              # environment variables of the command (a case may change them)
    before: dict = dataclasses.field(default_factory=dict)   # a run folder's files as the case left them


@dataclasses.dataclass
class Case:
    id: str
    command: Callable[[Env], list]   # builds the bad input; returns [script, *arguments]
    rc: int
    message: str                     # regex: the one error line (rc 2), or a line of the output
    check: Callable[[Env, str], None] | None = None   # (env, stdout) afterwards
    keras: bool = False              # needs Keras: run main(argv) in this process


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

FACES = synthetic_faces.draw_faces(np.arange(14) % 7, seed=3)   # uint8 (14, 48, 48)


def faces_npz(env) -> pathlib.Path:
    path = env.tmp / "faces.npz"
    np.savez(path, images=FACES)
    return path


def fid_command(env, *extra, data=None, images=None) -> list:
    return ["fid.py", "--data", data or env.csv, "--images", images or faces_npz(env),
            "--classifier", env.classifier, "--emotion", "Happy", *extra]


def evaluate_command(env, run_dir, *extra, data=None) -> list:
    return ["evaluate.py", run_dir, "--data", data or env.csv, "--classifier", env.classifier,
            "--max_per_class", "4", *extra]


def empty_folder(env) -> pathlib.Path:
    folder = env.tmp / "empty_photos"
    folder.mkdir(exist_ok=True)
    return folder


def translate_command(env, *extra, photo=None, generator=None) -> list:
    return ["translate.py", photo or face_png(env), "--no_detect", "--generator", generator or env.generator,
            *extra] + ([] if "--out" in extra else ["--out", env.out / "grid.png"])


def face_png(env, face=FACES[3], name="face.png") -> pathlib.Path:
    Image.fromarray(face).save(env.tmp / name)
    return env.tmp / name


def png16(path, face) -> pathlib.Path:
    """A 16-bit grey PNG (mode I;16) of an 8-bit face: every value v stored as v * 257."""
    Image.fromarray(face.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode == "I;16"
    return path


def sixteen_bit_faces(env) -> pathlib.Path:
    folder = env.tmp / "faces16"
    folder.mkdir()
    for i, face in enumerate(FACES):
        png16(folder / f"{i:02d}.png", face)
    return folder


def copied_run(env, *names) -> pathlib.Path:
    """A copy of the tiny run folder (only `names`, when given), to damage."""
    run = env.tmp / "run"
    shutil.copytree(env.generator, run, ignore=(lambda folder, files: [f for f in files if f not in names])
                    if names else None)
    return run


def run_with_config(env, text) -> pathlib.Path:
    run = copied_run(env)
    (run / "config.json").write_text(text)
    return run


def run_with_file(env, name, write) -> pathlib.Path:
    run = copied_run(env)
    write(run / name)
    return run


def lambda_model(path):
    import keras
    keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Lambda(lambda x: x * 2)]).save(path)


def unwritable(env, name) -> pathlib.Path:
    """A folder path nothing can be written under, for any user (root ignores chmod): a file stands there."""
    path = env.tmp / name
    path.write_text("a file where a folder should be\n")
    return path


def image_release_with_hidden_files(env) -> pathlib.Path:
    """The image-folder release (test/ only) with macOS' AppleDouble `._*.png` files and other dotfiles."""
    root = env.tmp / "fer2013"
    for label, emotion in enumerate(data_loader.EMOTIONS):
        folder = root / "test" / emotion.lower()
        folder.mkdir(parents=True)
        for i, face in enumerate(synthetic_faces.draw_faces([label] * 3, seed=label)):
            Image.fromarray(face).save(folder / f"{i}.png")
        (folder / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (root / "test" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "test" / ".thumbnails").mkdir()
    return root


def images_with_hidden_files(env) -> pathlib.Path:
    folder = env.tmp / "generated"
    folder.mkdir()
    for i, face in enumerate(FACES):
        Image.fromarray(face).save(folder / f"{i}.png")
    (folder / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    return folder


def damaged_gzip(env) -> pathlib.Path:
    """A gzipped CSV with bytes flipped mid-stream: it inflates to garbage rows before its CRC fails."""
    good = bytearray(synthetic_faces.write_synthetic_csv(env.tmp / "good.csv.gz", 8, 4).read_bytes())
    middle = len(good) // 2
    good[middle:middle + 200] = bytes(b ^ 0x55 for b in good[middle:middle + 200])
    (env.tmp / "fer2013.csv.gz").write_bytes(bytes(good))
    return env.tmp / "fer2013.csv.gz"


def one_emotion_csv(env) -> pathlib.Path:
    happy = synthetic_faces.draw_faces([3] * 32, seed=1)
    return data_loader.write_fer2013_csv(env.tmp / "happy_only.csv", {
        "Training": (happy, np.full(32, 3)), "PublicTest": (happy[:8], np.full(8, 3))})


# Training runs: the tiny T2 run copied to <tmp>/saved_models/tiny, to resume or damage

TINY_T2 = ["--base_filters", 4, "--batch_size", 16, "--sample_interval", 100]


def files_of(folder) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def tiny_run(env, damage=lambda run: None) -> pathlib.Path:
    """The tiny T2 run at <tmp>/saved_models/tiny after `damage(run folder)`; remembers its files."""
    run = env.tmp / "saved_models" / "tiny"
    shutil.copytree(env.generator, run)
    damage(run)
    env.before = files_of(run)
    return run


def train_command(env, *extra, script="ccyclegan_t2.py") -> list:
    return [script, "--output_dir", env.tmp, "--run_name", "tiny", *extra]


def resume_command(env, damage=lambda run: None, *extra, script="ccyclegan_t2.py") -> list:
    tiny_run(env, damage)
    return train_command(env, "--resume", *extra, script=script)


def without_checkpoint(run):
    """What a start killed before its first checkpoint leaves: config.json, log lines, TensorBoard."""
    for name in ("checkpoint.npz", "g_enc.keras", "g_dec.keras"):
        (run / name).unlink()


def torn_log_line(run):
    with open(run / "train_log.jsonl", "a") as log:
        log.write('{"step": 3, "D/ad')


def cut_in_half(name):
    def damage(run):
        (run / name).write_bytes((run / name).read_bytes()[:(run / name).stat().st_size // 2])
    return damage


def config_with(**changes):
    def damage(run):
        (run / "config.json").write_text(json.dumps({**json.loads((run / "config.json").read_text()), **changes}))
    return damage


def pickled_array(run):
    np.savez(run / "checkpoint.npz", state=np.array(json.dumps({"step": 2, "steps_per_epoch": 28})),
             payload=np.array([{"pickled": True}], dtype=object))


def images_folder_is_a_file(env) -> list:
    (env.tmp / "images").mkdir()
    unwritable(env, "images/tiny")
    return resume_command(env)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def stale_temporaries(run):
    """A dead process's checkpoint temporary (what a kill in mid-write leaves) and a live one's (pid 1)."""
    (run / f".checkpoint.tmp{dead_pid()}.npz").write_bytes(b"PK half a checkpoint")
    (run / ".checkpoint.tmp1.npz").write_bytes(b"PK being written")


# compare_runs.py's run folders

def evaluation_record(**mean) -> dict:
    return {"step": 100, "epoch": 1, "split": "PublicTest", "extractor": "classifier",
            "extractor_id": "classifier-0123", "per_emotion": {"Happy": {"n_real": 16}},
            "mean": {"fid": 12.5, "kid": 0.25, "accuracy": 0.5, **mean}}


def compared_run(env, metrics_lines, config=None) -> pathlib.Path:
    run = env.tmp / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config or {"run_name": "r"}))
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in metrics_lines))
    return run


def compare_command(env, run, out=None) -> list:
    return ["compare_runs.py", run, "--out", out or env.out / "log"]


# ---------------------------------------------------------------------------------------------
# Checks afterwards
# ---------------------------------------------------------------------------------------------

def truncate_caches(env):
    """Runs fid.py once to fill both caches, then cuts every cache file in half."""
    import fid
    with contextlib.redirect_stdout(io.StringIO()):
        assert fid.main([str(a) for a in fid_command(env)[1:]]) == 0
    caches = [*(env.tmp / "cache").glob("*.npz"), *(env.tmp / "stats").glob("*.npz")]
    assert len(caches) == 2
    for cache in caches:
        cache.write_bytes(cache.read_bytes()[:cache.stat().st_size // 2])
    return fid_command(env)


def caches_are_whole_again(env, stdout):
    assert "computed and cached" in stdout
    for cache in [*(env.tmp / "cache").glob("*.npz"), *(env.tmp / "stats").glob("*.npz")]:
        with np.load(cache) as archive:
            assert len(archive.files) > 0, cache


def same_fid_as_8_bit(env, stdout):
    import fid
    eight_bit = io.StringIO()
    with contextlib.redirect_stdout(eight_bit):
        assert fid.main([str(a) for a in fid_command(env)[1:]]) == 0
    fid_line = lambda text: next(line for line in text.splitlines() if line.startswith("FID"))  # noqa: E731
    assert fid_line(stdout) == fid_line(eight_bit.getvalue())


def input_crop_is_the_16_bit_face(env, stdout):
    crop = np.asarray(Image.open(env.out / "each" / "face1_input.png"), np.int16)
    assert np.abs(crop - FACES[3]).max() <= 1


def not_appended(env, stdout):
    assert not (env.tmp / "run" / "metrics.jsonl").exists()


def appended_at_step(step):
    def check(env, stdout):
        (record,) = [json.loads(line) for line in (env.tmp / "run" / "metrics.jsonl").read_text().splitlines()]
        assert record["step"] == step and record["mean"]["accuracy"] is not None
    return check


def run_files_unchanged(env, stdout):
    assert files_of(env.tmp / "saved_models" / "tiny") == env.before


def run_unchanged(env, stdout):
    run_files_unchanged(env, stdout)
    assert not (env.tmp / "images").exists()


def resumed_to_step(step):
    def check(env, stdout):
        run = env.tmp / "saved_models" / "tiny"
        assert [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()] == \
            list(range(1, step + 1))
        import run_folder
        assert run_folder.read_checkpoint(run)[0]["step"] == step
    return check


def only_the_live_temporary_left(env, stdout):
    assert [path.name for path in (env.tmp / "saved_models" / "tiny").glob(".*.tmp*")] == [".checkpoint.tmp1.npz"]


def not_cached(env, stdout):
    assert "computed; not cached" in stdout


def results_printed(env, stdout):
    assert "mean" in stdout and "FID" in stdout


def table_written(env, stdout):
    assert (env.out / "log" / "experiment_log.md").is_file() and (env.out / "log" / "experiment_log.png").is_file()


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

CASES = [
    # Caches: damaged -> rebuilt; unwritable -> one warning, the result still comes (issue 11, items 4, 6)
    Case("fid: truncated data and real-feature caches are rebuilt",
         truncate_caches, 0, r"^FID \[classifier", caches_are_whole_again, keras=True),
    Case("fid: unwritable data cache folder is one warning, the data still loads",
         lambda env: env.environ.update(CCYCLEGAN_CACHE_DIR=str(unwritable(env, "cache"))) or fid_command(env),
         0, r"warning: .*cache not written", keras=True),
    Case("fid: unwritable --stats_dir is one warning, the scores still come",
         lambda env: fid_command(env, "--stats_dir", unwritable(env, "stats")),
         0, r"warning: .*cache not written", not_cached, keras=True),
    # 16-bit grey PNGs are scaled to 8 bits, not clipped to white (item 7)
    Case("fid: 16-bit PNG faces in --images score as their 8-bit originals",
         lambda env: fid_command(env, images=sixteen_bit_faces(env)),
         0, r"^FID \[classifier", same_fid_as_8_bit, keras=True),
    Case("translate: a 16-bit grey photo is scaled, not saturated",
         lambda env: translate_command(env, "--per_emotion", env.out / "each",
                                       photo=png16(env.tmp / "face16.png", FACES[3])),
         0, r"1 face ->", input_crop_is_the_16_bit_face, keras=True),
    # Hidden files do not spoil an image folder (item 14)
    Case("fid: AppleDouble ._*.png files and dotfiles in image folders are skipped",
         lambda env: fid_command(env, data=image_release_with_hidden_files(env), images=images_with_hidden_files(env)),
         0, r"^real: .*fer2013 PublicTest/Happy, N=3", keras=True),
    # Messages that name the right culprit (item 14)
    Case("fid: --images a single PNG, not a folder or .npz",
         lambda env: fid_command(env, images=face_png(env)), 2, r"face\.png: not an \.npz \(give a folder"),
    Case("fid: a damaged gzip is blamed, not a CSV line",
         lambda env: fid_command(env, data=damaged_gzip(env)), 2, r"fer2013\.csv\.gz: damaged gzip file \(CRC"),
    Case("evaluate: a CSV with one emotion names the file",
         lambda env: evaluate_command(env, env.generator, data=one_emotion_csv(env)),
         2, r"happy_only\.csv: PublicTest: need at least 2 emotions", keras=True),
    Case("ccyclegan_t2: a CSV with one emotion names the file (sample grids need all seven); no config.json",
         lambda env: ["ccyclegan_t2.py", "--data", one_emotion_csv(env), "--output_dir", env.out, *TINY_T2,
                      "--max_steps", 1],
         2, r"happy_only\.csv: PublicTest: no Angry face to show in sample grids", keras=True),
    Case("translate: a folder without photos translates nothing and says so",
         lambda env: translate_command(env, photo=empty_folder(env)), 2, r"empty_photos: no photo translated \(0 skipped\)"),
    Case("evaluate: a file as the run folder is called a file",
         lambda env: evaluate_command(env, env.csv), 2, r"synthetic_fer2013\.csv: a file, not a run folder", keras=True),
    # Broken or hostile generator folders (item 8)
    Case("evaluate: a Lambda layer in a generator file is refused (Keras safe mode)",
         lambda env: evaluate_command(env, run_with_file(env, "g_enc.keras", lambda_model)),
         2, r"g_enc\.keras: cannot load the generator \(.*Lambda", keras=True),
    Case("evaluate: a generator file that is not a zip is refused",
         lambda env: evaluate_command(env, run_with_file(env, "g_dec.keras", lambda p: p.write_bytes(b"PK?"))),
         2, r"g_dec\.keras: cannot load the generator", keras=True),
    Case("evaluate: config.json that is not JSON",
         lambda env: evaluate_command(env, run_with_config(env, "{experiment: t2")),
         2, r"config\.json: not valid JSON", keras=True),
    Case("translate: config.json that is a list, not an object",
         lambda env: translate_command(env, generator=run_with_config(env, "[1, 2]")),
         2, r"config\.json: expected a JSON object"),
    Case("translate: config.json naming another module as the experiment is not imported",
         lambda env: translate_command(env, generator=run_with_config(env, '{"experiment": "os"}')),
         2, r"config\.json: unknown experiment 'os'; known: ccyclegan_t1, ccyclegan_t2, ccyclegan_t3"),
    Case("translate: a generator file that is not a zip is refused",
         lambda env: translate_command(env, generator=run_with_file(env, "g_enc.keras", lambda p: p.write_text("x"))),
         2, r"g_enc\.keras: cannot load the generator", keras=True),
    # translate --out must name an image file (item 9)
    Case("translate: --out without a suffix",
         lambda env: translate_command(env, "--out", env.out / "grid"), 2, r"grid: --out must be an image file name"),
    Case("translate: --out a folder",
         lambda env: translate_command(env, "--out", env.out), 2, r"--out must be an image file name .*folder"),
    # evaluate's record (items 6, 13)
    Case("evaluate: unwritable metrics.jsonl -> results printed, then one error line",
         lambda env: evaluate_command(env, run_with_file(env, "metrics.jsonl", pathlib.Path.mkdir)),
         2, r"metrics\.jsonl: results not recorded .*printed above", results_printed, keras=True),
    Case("evaluate: weights without a checkpoint are evaluated, not recorded at an unknown step",
         lambda env: evaluate_command(env, copied_run(env, "config.json", "g_enc.keras", "g_dec.keras")),
         0, r"not recorded: .*checkpoint\.npz.*--step N", not_appended, keras=True),
    Case("evaluate: --step records weights without a checkpoint at that step",
         lambda env: evaluate_command(env, copied_run(env, "config.json", "g_enc.keras", "g_dec.keras"), "--step", 4000),
         0, r"appended to .*metrics\.jsonl", appended_at_step(4000), keras=True),
    # compare_runs.py (item 14)
    Case("compare_runs: a binary experiment script gives no description, not a traceback",
         lambda env: compare_command(env, compared_run(env, [json.dumps(evaluation_record())],
                                                       {"script": "saved_models/pretrained/g_enc.keras"})),
         0, r"\| run \| saved_models/pretrained/g_enc\.keras \|  \| 12\.50 \|", table_written),
    Case("compare_runs: a metric that is not a number",
         lambda env: compare_command(env, compared_run(env, [json.dumps(evaluation_record(fid="12.5"))])),
         2, r"metrics\.jsonl: line 1: fid '12\.5' is not a number"),
    Case("compare_runs: --out is a file",
         lambda env: compare_command(env, compared_run(env, [json.dumps(evaluation_record())]),
                                     out=unwritable(env, "log_file")),
         2, r"log_file: --out must be a folder"),
    Case("compare_runs: a file as the run folder is called a file",
         lambda env: compare_command(env, env.csv), 2, r"synthetic_fer2013\.csv: a file, not a run folder"),
    Case("compare_runs: null + fid_nonfinite (how evaluate writes NaN) reads as n/a",
         lambda env: compare_command(env, compared_run(env, [json.dumps(evaluation_record(fid=None, fid_nonfinite=True))])),
         0, r"\| n/a \| 0\.2500 \|", table_written),
    Case("compare_runs: a bare NaN (older files) reads as n/a",
         lambda env: compare_command(env, compared_run(env, [json.dumps(evaluation_record(fid=float("nan")))])),
         0, r"\| n/a \| 0\.2500 \|", table_written),
    # A refused --resume leaves the run as it was (issue 11, item 2)
    Case("ccyclegan_t1: --resume of a T2 run names both experiments; the run is left as it was",
         lambda env: resume_command(env, script="ccyclegan_t1.py"),
         2, r"config\.json: a run of 'ccyclegan_t2', not of 'ccyclegan_t1'", run_unchanged, keras=True),
    Case("ccyclegan_t2: --resume with --data of another epoch length; the run is left as it was",
         lambda env: resume_command(env, lambda run: None, "--data",
                                    synthetic_faces.write_synthetic_csv(env.tmp / "small.csv", 8, 4)),
         2, r"checkpoint\.npz: saved with 28 steps per epoch, the data now gives 3", run_unchanged, keras=True),
    # A start stopped before its first checkpoint does not block the next (item 3)
    Case("ccyclegan_t2: a run folder without a checkpoint is started afresh, with a note",
         lambda env: tiny_run(env, without_checkpoint) and train_command(env, "--data", env.csv, *TINY_T2,
                                                                         "--max_steps", 1),
         0, r"^note: .*tiny holds no checkpoint .*starting afresh in it", resumed_to_step(1), keras=True),
    Case("ccyclegan_t2: --resume without a checkpoint says to start afresh; the run is left as it was",
         lambda env: resume_command(env, without_checkpoint),
         2, r"checkpoint\.npz: no checkpoint to resume from; .*start it afresh \(the same command without --resume\)",
         run_unchanged, keras=True),
    # Damaged run folders on --resume (item 5)
    Case("ccyclegan_t2: --resume drops a torn last train_log.jsonl line (a full disk) and goes on",
         lambda env: resume_command(env, torn_log_line, "--max_steps", 3),
         0, r"^resumed .*tiny at step 2", resumed_to_step(3), keras=True),
    Case("ccyclegan_t2: --resume from a truncated checkpoint",
         lambda env: resume_command(env, cut_in_half("checkpoint.npz")),
         2, r"checkpoint\.npz: not a readable checkpoint", run_unchanged, keras=True),
    Case("ccyclegan_t2: --resume from a checkpoint holding a pickled array",
         lambda env: resume_command(env, pickled_array),
         2, r"checkpoint\.npz: not a readable checkpoint \(Object arrays cannot be loaded", run_unchanged, keras=True),
    Case("ccyclegan_t2: --resume without config.json",
         lambda env: resume_command(env, lambda run: (run / "config.json").unlink()),
         2, r"config\.json: not a run folder \(no config\.json\)", run_unchanged, keras=True),
    Case("ccyclegan_t2: --resume with a config.json that is not JSON",
         lambda env: resume_command(env, lambda run: (run / "config.json").write_text('{"batch_size": 16,')),
         2, r"config\.json: not valid JSON", run_unchanged, keras=True),
    Case("ccyclegan_t2: --resume with a config.json value of the wrong type",
         lambda env: resume_command(env, config_with(batch_size="16")),
         2, r"config\.json: not a config of this experiment \(--batch_size must be of type int, got '16'\)",
         run_unchanged, keras=True),
    # Stale temporaries of killed processes are removed at start (item 12)
    Case("ccyclegan_t2: a dead process's checkpoint temporary is removed at start, a live one's kept",
         lambda env: resume_command(env, stale_temporaries, "--max_steps", 3),
         0, r"^resumed .*tiny at step 2", only_the_live_temporary_left, keras=True),
    # Places that cannot be written: one line, exit 2, the run kept (item 6)
    Case("ccyclegan_t2: --output_dir a file",
         lambda env: ["ccyclegan_t2.py", "--output_dir", unwritable(env, "outputs"), "--data", env.csv, *TINY_T2,
                      "--max_steps", 1],
         2, r"outputs/images/t2: cannot write \(Not a directory\)", keras=True),
    Case("ccyclegan_t2: --resume where the images folder is a file; the run is left as it was",
         images_folder_is_a_file, 2, r"images/tiny: cannot write \(File exists\)", run_files_unchanged, keras=True),
    # Hyperparameters and run names out of range: one line before Keras loads (items 10, 11)
    Case("ccyclegan_t2: --adam_lr -1", lambda env: train_command(env, "--adam_lr", -1),
         2, r"--adam_lr must be more than 0, got -1\.0"),
    Case("ccyclegan_t2: --adam_beta_1 1.5", lambda env: train_command(env, "--adam_beta_1", 1.5),
         2, r"--adam_beta_1 must be less than 1, got 1\.5"),
    Case("ccyclegan_t1: --adam_beta_2 nan", lambda env: train_command(env, "--adam_beta_2", "nan", script="ccyclegan_t1.py"),
         2, r"--adam_beta_2 must be a finite number, got nan"),
    Case("ccyclegan_t2: --seed -1", lambda env: train_command(env, "--seed", -1),
         2, r"--seed must be 0 or more, got -1"),
    Case("ccyclegan_t2: --seed 2**64", lambda env: train_command(env, "--seed", 2**64),
         2, r"--seed must be less than 4294967296, got 18446744073709551616"),
    Case("ccyclegan_t2: --seed 1e20", lambda env: train_command(env, "--seed", "1e20"),
         2, r"argument --seed: invalid int value: '1e20'"),
    Case("ccyclegan_t2: --rec_loss_w -1", lambda env: train_command(env, "--rec_loss_w", -1),
         2, r"--rec_loss_w must be 0 or more, got -1\.0"),
    Case("sweep: --max_trials 0", lambda env: ["sweep.py", "ccyclegan_t2", "--directory", env.out / "sweep",
                                                "--max_trials", 0],
         2, r"--max_trials must be at least 1, got 0"),
    Case("ccyclegan_t2: --run_name ../../escape",
         lambda env: ["ccyclegan_t2.py", "--output_dir", env.out, "--run_name", "../../escape"],
         2, r"--run_name '\.\./\.\./escape': give a plain folder name"),
    Case("ccyclegan_t2: --run_name an absolute path",
         lambda env: ["ccyclegan_t2.py", "--output_dir", env.out, "--run_name", env.tmp / "elsewhere"],
         2, r"--run_name '/.*elsewhere': give a plain folder name"),
]


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def env(tmp_path, synthetic_csv, tiny_classifier_path, tiny_generator) -> Env:
    (tmp_path / "out").mkdir()
    (tmp_path / "in").mkdir()
    return Env(tmp_path / "in", tmp_path / "out", synthetic_csv, tiny_classifier_path, tiny_generator,
               {"CCYCLEGAN_CACHE_DIR": str(tmp_path / "in" / "cache"),
                "CCYCLEGAN_FID_STATS_DIR": str(tmp_path / "in" / "stats")})


def run_case(case: Case, env: Env, monkeypatch, capsys) -> tuple[int, str, str]:
    for name, value in env.environ.items():
        monkeypatch.setenv(name, value)
    script, *args = case.command(env)
    args = [str(arg) for arg in args]
    if not case.keras:
        result = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True,
                                cwd=env.tmp, env={**os.environ, **env.environ}, timeout=300)
        return result.returncode, result.stdout, result.stderr
    for name, value in env.environ.items():  # the builder may have changed them
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(env.tmp)
    capsys.readouterr()
    try:
        rc = importlib.import_module(pathlib.Path(script).stem).main(args) or 0  # None: exit status 0
    except SystemExit as exit_:
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, env, monkeypatch, capsys):
    rc, out, err = run_case(case, env, monkeypatch, capsys)
    assert "Traceback" not in err, err
    assert rc == case.rc, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    if case.rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert re.search(case.message, lines[0]), lines[0]
        assert not any(env.out.iterdir()), f"written on error: {list(env.out.iterdir())}"
    else:
        assert any(re.search(case.message, line) for line in (out + err).splitlines()), out + err
    if case.check:
        case.check(env, out)
