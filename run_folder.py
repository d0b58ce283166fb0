"""The run folder: the one module that knows its files, how to read them, and how to write them.

    saved_models/<run>/config.json          the full config, the experiment's name and the backend
    saved_models/<run>/train_log.jsonl      one line per step: every loss term
    saved_models/<run>/tensorboard/         the same scalars for TensorBoard
    saved_models/<run>/checkpoint.npz       G, D, both optimizers (arrays) and the state (step, ...)
    saved_models/<run>/<name>.keras         the final generator's networks (T1: generator, T2: g_enc + g_dec):
                                            the EMA of G's weights (G itself with --ema_decay 0)
    saved_models/<run>/raw/<name>.keras     G itself at the end, when the above is its EMA
    saved_models/<run>/best/<name>.keras    the generator at the best evaluation (--eval_every) ...
    saved_models/<run>/best/best.json       ... its step, epoch and scores
    saved_models/<run>/metrics.jsonl        evaluations, one JSON line each
    images/<run>/step_0000200.png           sample grids

Reading a run (config, metrics, checkpoint state) imports no Keras; `load_translator` does. Nothing a
run folder holds can make it run code: the experiment named in config.json must be a registered one
(experiments.py), checkpoints are read without pickle, and `.keras` files load in Keras' safe mode
(no Python lambdas).
"""
import json
import math
import pathlib

import numpy as np

import atomic
import experiments

CONFIG = "config.json"
TRAIN_LOG = "train_log.jsonl"
TENSORBOARD = "tensorboard"
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
GENERATOR_SUFFIX = ".keras"
RAW_GENERATOR = "raw"
BEST_GENERATOR = "best"
BEST_RECORD = "best.json"


class RunFolderError(ValueError):
    """A run folder that is missing, incomplete or malformed; the message is one line naming the file."""


def run_dirs(output_dir, run_name):
    """(saved_models/<run>, images/<run>) under `output_dir`."""
    root = pathlib.Path(output_dir)
    return root / "saved_models" / run_name, root / "images" / run_name


# -- config.json ----------------------------------------------------------------------------------

def write_config(run_dir, record):
    atomic.write_text(pathlib.Path(run_dir) / CONFIG, json.dumps(record, indent=2))


def config_path(run_dir):
    """config.json of a run folder, or of the run that a generator's raw/ or best/ folder belongs to
    (so the tools load those generators too)."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CONFIG).is_file() and run_dir.name in (RAW_GENERATOR, BEST_GENERATOR):
        return run_dir.parent / CONFIG
    return run_dir / CONFIG


def read_config(run_dir, missing_ok=False):
    """config.json as a dict ({} if it is absent and `missing_ok`); see config_path."""
    path = config_path(run_dir)
    if not path.is_file():
        if missing_ok:
            return {}
        raise RunFolderError(f"{path}: not a run folder (no {CONFIG})")
    try:
        config = json.loads(path.read_text())
    except (ValueError, OSError) as err:  # JSON, UTF-8 and read errors
        raise RunFolderError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise RunFolderError(f"{path}: expected a JSON object")
    return config


def experiment_of(run_dir):
    """The registered experiment module that trained the run; RunFolderError for any other name."""
    run_dir = pathlib.Path(run_dir)
    try:
        return experiments.load(read_config(run_dir).get("experiment"), source=str(config_path(run_dir)))
    except experiments.ExperimentError as err:
        raise RunFolderError(str(err)) from None


# -- checkpoint.npz -------------------------------------------------------------------------------

def write_checkpoint(run_dir, state, arrays):
    """{name: array} and a JSON-able state dict, atomically."""
    with atomic.replacing(pathlib.Path(run_dir) / CHECKPOINT) as temporary:
        np.savez(temporary, state=np.array(json.dumps(state)), **arrays)


def read_checkpoint(run_dir):
    """(state dict, {name: array}) of a checkpoint; RunFolderError if it is not one of ours."""
    path = pathlib.Path(run_dir) / CHECKPOINT
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        state = json.loads(str(arrays.pop("state")))
    except atomic.UNREADABLE_NPZ as err:  # truncated, damaged, pickled (allow_pickle=False), no state
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunFolderError(f"{path}: not a readable checkpoint ({reason})") from None
    if not (isinstance(state, dict) and isinstance(state.get("step"), int)):
        raise RunFolderError(f"{path}: not a readable checkpoint (its state has no step)")
    return state, arrays


def trained_steps(run_dir):
    """(step, epoch) of a run's last checkpoint, or (None, None) without one; epoch counts as Keras
    does in callbacks: the 1-based epoch the step fell in."""
    try:
        state, _ = read_checkpoint(run_dir)
        return state["step"], -(-state["step"] // state["steps_per_epoch"])
    except (RunFolderError, KeyError, TypeError, ZeroDivisionError):
        return None, None


# -- train_log.jsonl ------------------------------------------------------------------------------

def open_train_log(run_dir):
    """train_log.jsonl for appending, line-buffered."""
    return open(pathlib.Path(run_dir) / TRAIN_LOG, "a", buffering=1)


def _is_step(record):
    return isinstance(record, dict) and isinstance(record.get("step"), int)


def truncate_train_log(run_dir, step):
    """Drop log lines of steps after `step` (a resumed run trains them again), and a torn last line:
    what a full disk or a kill in mid-write leaves (the checkpoint is whole; the line is retrained)."""
    path = pathlib.Path(run_dir) / TRAIN_LOG
    if path.exists():
        lines = _read_lines(path)
        if lines and not _parses(lines[-1]):
            lines.pop()
        records = _parse_lines(path, lines, _is_step, "not a step record (no 'step')")
        kept = [json.dumps(record) for record in records if record["step"] <= step]
        atomic.write_text(path, "".join(line + "\n" for line in kept))


def _parses(line):
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


# -- metrics.jsonl --------------------------------------------------------------------------------

def append_metrics(run_dir, record):
    """Append one JSON line to metrics.jsonl, atomically (a crash leaves the old file whole)."""
    path = pathlib.Path(run_dir) / METRICS
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    with atomic.replacing(path) as temporary:
        temporary.write_bytes(old + (json.dumps(json_safe(record), allow_nan=False) + "\n").encode())
    return path


def json_safe(value):
    """`value` with every NaN or infinite float replaced by None, flagged by `<key>_nonfinite: true`
    beside it in its dict: JSON has no NaN (Python's bare `NaN` breaks other readers)."""
    if isinstance(value, dict):
        safe = {}
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                safe[key], safe[f"{key}_nonfinite"] = None, True
            else:
                safe[key] = json_safe(item)
        return safe
    if isinstance(value, (list, tuple)):
        return [None if isinstance(item, float) and not math.isfinite(item) else json_safe(item) for item in value]
    return value


def read_metrics(run_dir, check=None):
    """The evaluations in metrics.jsonl ([] if there is none yet); RunFolderError names a bad line.
    `check(record, where)` may vet or normalise each record (where = "<file>: line N")."""
    return _read_jsonl(pathlib.Path(run_dir) / METRICS, _is_evaluation,
                       "not an evaluation record (no 'mean' metrics)", check)


def _is_evaluation(record):
    return isinstance(record, dict) and isinstance(record.get("mean"), dict)


def _read_jsonl(path, *how):
    """The records of a JSONL file ([] if it is absent); `how`: _parse_lines' is_record, problem, check."""
    if not path.exists():
        return []
    return _parse_lines(path, _read_lines(path), *how)


def _read_lines(path):
    try:
        return path.read_text().splitlines()
    except (ValueError, OSError) as err:  # not UTF-8, a folder, unreadable
        raise RunFolderError(f"{path}: not a readable text file ({err})") from None


def _parse_lines(path, lines, is_record=lambda record: isinstance(record, dict), problem="not a JSON object",
                 check=None):
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RunFolderError(f"{path}: line {number}: not valid JSON ({err.msg})") from None
            if not is_record(record):
                raise RunFolderError(f"{path}: line {number}: {problem}")
            records.append(check(record, f"{path}: line {number}") if check else record)
    return records


# -- the final generator --------------------------------------------------------------------------

def generator_path(run_dir, name):
    return pathlib.Path(run_dir) / f"{name}{GENERATOR_SUFFIX}"


def write_generator(run_dir, nets, variant=""):
    """A generator's networks {name: net} as <variant>/<name>.keras, each atomically; variant "" is
    the generator the tools load, RAW_GENERATOR or BEST_GENERATOR the others."""
    folder = pathlib.Path(run_dir) / variant
    folder.mkdir(exist_ok=True)
    for name, net in nets.items():
        with atomic.replacing(generator_path(folder, name)) as temporary:
            net.save(temporary)


def write_best(run_dir, nets, record):
    """The best generator so far into best/, then its record (step, scores) as best/best.json."""
    write_generator(run_dir, nets, BEST_GENERATOR)
    atomic.write_text(pathlib.Path(run_dir) / BEST_GENERATOR / BEST_RECORD, json.dumps(record, indent=2))


def read_best(run_dir):
    """best/best.json as a dict, or None before the first evaluation."""
    path = pathlib.Path(run_dir) / BEST_GENERATOR / BEST_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def generator_files(run_dir):
    """The final generator's `.keras` files of a run folder (not the hidden temporaries of a save)."""
    return sorted(path for path in pathlib.Path(run_dir).glob(f"*{GENERATOR_SUFFIX}")
                  if not path.name.startswith("."))


def load_translator(run_dir):
    """The final generator of a run folder (or its raw/ or best/ one), ready to translate faces
    (inference.Translator).

    The experiment is checked against the registry before anything else loads; the networks load
    in Keras' safe mode, so a `.keras` file holding Python code (a Lambda layer) is refused. Every
    failure is a RunFolderError of one line naming the file."""
    run_dir = pathlib.Path(run_dir)
    how = "give the folder of a finished T1, T2 or T3 training run, saved_models/<run>"
    if not config_path(run_dir).is_file():
        raise RunFolderError(f"{run_dir}: no trained generator here (no {CONFIG}); {how}")
    experiment = experiment_of(run_dir)
    saved = read_config(run_dir)
    files = generator_files(run_dir)
    if not files:
        raise RunFolderError(f"{run_dir}: no generator .keras files (the run has not finished); {how}")
    import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
    import keras

    import blocks  # noqa: F401  (registers the custom layers the saved networks use)
    import inference
    try:
        config = experiment.Config(**experiment.Config.saved_values(saved))
    except TypeError as err:
        raise RunFolderError(f"{config_path(run_dir)}: not a config of {experiment.__name__} ({err})") from None
    nets = {}
    for path in files:
        try:
            nets[path.stem] = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:  # Keras raises ValueError, TypeError, zip errors, ... for a damaged file
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RunFolderError(f"{path}: cannot load the generator ({reason})") from None
    return inference.Translator(experiment, config, nets)
