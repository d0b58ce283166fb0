"""Hyperparameter sweeps of an experiment script, driven by KerasTuner and scored by KID or FID.

    python sweep.py ccyclegan_t2 --algorithm grid --objective kid \\
        --directory saved_models/sweeps/lr_lcl_lcyc --data datasets/fer2013.csv --max_steps 5000

In the spirit of the paper's Fig. 2 the default space is learning rate x lambda_cl (g_cl_loss_w) x
lambda_cyc (rec_loss_w); `--space NAME=V1,V2,...` (or NAME=LOW:HIGH, log-sampled, for --algorithm
bayes) sweeps any numeric flag of the script instead. All other flags go to the script unchanged.

Each trial is an ordinary training run: <directory>/saved_models/trial_<id>/ (config.json, the loss
log, checkpoints, metrics.jsonl) with its grids in <directory>/images/trial_<id>/, so
`python compare_runs.py <directory>/saved_models/trial_*` tabulates a sweep. After training, the
trial's generator is scored by trainer.EvaluationCallback on the PublicTest split (appended to its
metrics.jsonl); the mean KID or FID over the 7 target emotions is the objective, minimised. All
trials use the same --seed, so they differ only in their hyperparameters. KerasTuner keeps its state
in <directory>/tuner/.

Resume: run the same command again. Finished trials are kept, an interrupted trial continues from
its last checkpoint, and --max_trials may grow; the space, objective and script flags may not change.

Distribute: run the same command on several machines that share <directory>, with
KERASTUNER_ORACLE_IP=<the chief's address> and KERASTUNER_ORACLE_PORT=<a free port>, and
KERASTUNER_TUNER_ID=chief on one process (it hands out trials and trains none) and tuner0, tuner1,
... on the others (each trains one trial at a time). The chief waits until every trial is done.
"""
import argparse
import dataclasses
import importlib.util
import json
import math
import os
import pathlib
import shutil
import sys

import atomic
import data_loader
import experiments
import fid
import run_folder
import train_config
from lazy_import import lazy_import

# KerasTuner imports Keras: it loads once the flags are read (see lazy_import.py).
keras, kt = lazy_import("keras"), lazy_import("keras_tuner")

OBJECTIVES = ("kid", "fid")
# The paper's Fig. 2 axes; the middle values are the paper's defaults (2e-4, 1, 1).
DEFAULT_GRID = {"adam_lr": [1e-4, 2e-4, 4e-4], "g_cl_loss_w": [0.5, 1.0, 2.0], "rec_loss_w": [0.5, 1.0, 2.0]}
DEFAULT_RANGES = {"adam_lr": (5e-5, 1e-3), "g_cl_loss_w": (0.1, 10.0), "rec_loss_w": (0.1, 10.0)}
DEFAULT_BAYES_TRIALS = 20
SWEEP_FILE = "sweep.json"
PROJECT = "tuner"
SET_BY_SWEEP = ("run_name", "output_dir", "resume")


class SweepError(ValueError):
    """Bad sweep input; reported as one `error: ...` line, exit status 2."""


@dataclasses.dataclass
class Sweep:
    experiment: object
    algorithm: str
    objective: str
    directory: pathlib.Path
    space: dict          # name -> list of values (a grid axis) or (low, high) (a range)
    script_args: list    # the script's own flags, the same for every trial
    max_trials: int
    seed: int
    eval_max_per_class: int | None = None
    stats_dir: str | None = None

    def settings(self):
        """What a resumed sweep must share with the first run (--max_trials may grow)."""
        return {"experiment": self.experiment.__name__, "algorithm": self.algorithm,
                "objective": self.objective, "seed": self.seed,
                "space": {name: list(values) for name, values in self.space.items()},
                "script_args": self.script_args}

    def hyperparameters(self):
        hp = kt.HyperParameters()
        fields = {f.name: f for f in dataclasses.fields(self.experiment.Config)}
        for name, values in self.space.items():
            if isinstance(values, list):
                hp.Choice(name, values, ordered=True)
            else:
                low, high = values
                kind = hp.Int if fields[name].type is int else hp.Float
                kind(name, low, high, sampling="log" if low > 0 else "linear")
        return hp

    def oracle(self):
        common = dict(objective=kt.Objective(self.objective, "min"), max_trials=self.max_trials,
                      hyperparameters=self.hyperparameters(), allow_new_entries=False,
                      tune_new_entries=False, seed=self.seed,
                      # A diverging trial (NaN loss) is a result, not a reason to stop the sweep.
                      max_consecutive_failed_trials=self.max_trials + 1)
        if self.algorithm == "grid":
            from sweep_tuner import GridOracle
            return GridOracle(**common)
        return kt.oracles.BayesianOptimizationOracle(**common)

    def tuner(self):
        from sweep_tuner import SweepTuner
        return SweepTuner(self, oracle=self.oracle(), directory=str(self.directory),
                          project_name=PROJECT, overwrite=False)

    # -- one trial ---------------------------------------------------------------------------

    def trial_argv(self, trial_id, values):
        hp_args = [f"--{name}={value!r}" for name, value in sorted(values.items())]
        return [*self.script_args, *hp_args, "--output_dir", str(self.directory),
                "--run_name", f"trial_{trial_id}"]

    def run_trial(self, trial_id, values):
        """Train (or finish) one trial's run and return its metrics for the oracle."""
        import trainer
        argv = self.trial_argv(trial_id, values)
        config, _ = train_config.parse_config(self.experiment, argv)
        run_dir, images_dir = trainer.run_dirs(config, self.experiment)
        resume = (run_dir / run_folder.CHECKPOINT).is_file()
        if not resume:  # an earlier attempt that stopped before its first checkpoint: start afresh
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(images_dir, ignore_errors=True)
        keras.backend.clear_session()
        try:
            run = trainer.prepare(self.experiment, *train_config.parse_config(
                self.experiment, argv + (["--resume"] if resume else [])))
            run = run._replace(notes=f"sweep {self.directory.name}, trial {trial_id}: " +
                               ", ".join(f"{name}={value:g}" for name, value in sorted(values.items())))
            model = trainer.train(run)
        except trainer.NonFiniteError as err:
            raise kt.errors.FailedTrialError(f"trial {trial_id}: {err}") from None
        except (train_config.ConfigError, data_loader.DataError, run_folder.RunFolderError) as err:
            raise kt.errors.FatalError(f"trial {trial_id}: {err}") from None
        try:
            record = self.final_evaluation(run, model)
        except fid.FIDError as err:  # e.g. no classifier: every trial would fail the same way
            raise kt.errors.FatalError(f"trial {trial_id}: evaluation: {err}") from None
        means = {"kid": record["mean"]["kid"], "fid": record["mean"]["fid"],
                 "expression_accuracy": record["mean"]["accuracy"]}
        if means[self.objective] is None:
            raise kt.errors.FatalError(
                f"trial {trial_id}: no mean FID (every emotion has fewer test faces than the "
                "feature dimension); sweep with --objective kid")
        return {name: value for name, value in means.items() if value is not None}

    def final_evaluation(self, run, model):
        """The evaluation of the trained generator: --eval_every's last one if it was at the final
        step, else a new one by trainer.EvaluationCallback (appended to metrics.jsonl)."""
        import trainer
        records = run_folder.read_metrics(run.run_dir)
        if records and records[-1].get("step") == model.step:
            return records[-1]
        callback = trainer.EvaluationCallback(
            str(run.run_dir), run.dataset.split("PublicTest"), run.config.classifier or None,
            max_per_class=self.eval_max_per_class, stats_dir=self.stats_dir)
        callback.set_model(model)
        steps_per_epoch = data_loader.Batches(run.dataset.split("Training"), run.config.batch_size,
                                              balanced=run.config.balanced).steps_per_epoch
        callback.on_epoch_end((model.step - 1) // steps_per_epoch, {})
        return run_folder.read_metrics(run.run_dir)[-1]


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def load_experiment(name):
    """A registered experiment script, by module name or file name (ccyclegan_t2, ccyclegan_t2.py)."""
    try:
        return experiments.load(pathlib.Path(name).name.removesuffix(".py"), source=name)
    except experiments.ExperimentError as err:
        raise SweepError(str(err)) from None


def tunable_fields(experiment):
    """The script's numeric flags that shape a run (not where it runs or for how long)."""
    resumable = experiment.Config.resumable_fields()
    return {f.name: f.type for f in dataclasses.fields(experiment.Config)
            if f.type in (int, float) and f.name not in resumable}


def parse_space(specs, experiment, algorithm):
    if not specs:
        return dict(DEFAULT_GRID if algorithm == "grid" else DEFAULT_RANGES)
    tunable = tunable_fields(experiment)
    space = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in tunable:
            raise SweepError(f"--space {spec}: {name!r} is not a numeric flag of {experiment.__name__}; "
                             f"choose from {', '.join(sorted(tunable))}")
        kind = tunable[name]
        try:
            if ":" in values:
                low, high = (kind(v) for v in values.split(":"))
                if algorithm == "grid":
                    raise SweepError(f"--space {spec}: a grid needs values (NAME=V1,V2,...), not a range")
                if not low < high:
                    raise SweepError(f"--space {spec}: the range needs LOW < HIGH")
                space[name] = (low, high)
            else:
                space[name] = sorted({kind(v) for v in values.split(",")})
        except ValueError as err:
            if isinstance(err, SweepError):
                raise
            raise SweepError(f"--space {spec}: expected NAME=V1,V2,... or NAME=LOW:HIGH with "
                             f"{kind.__name__} values") from None
    return space


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False,
        epilog="Every other flag (--data, --max_steps, --epochs, --batch_size, --classifier, ...) "
               "is passed to the experiment script; see its --help.")
    parser.add_argument("experiment", help="the experiment script, e.g. ccyclegan_t2")
    parser.add_argument("--algorithm", choices=("grid", "bayes"), default="grid",
                        help="KerasTuner GridSearch or BayesianOptimization (default grid)")
    parser.add_argument("--max_trials", type=int, default=None,
                        help=f"default: the whole grid; {DEFAULT_BAYES_TRIALS} for bayes")
    parser.add_argument("--objective", choices=OBJECTIVES, default="kid",
                        help="minimised mean over the 7 target emotions (default kid: unbiased at "
                             "small N)")
    parser.add_argument("--directory", required=True,
                        help="the sweep's folder, e.g. saved_models/sweeps/NAME")
    parser.add_argument("--space", action="append", default=[], metavar="NAME=V1,V2|NAME=LOW:HIGH",
                        help="a swept flag (repeat for each); default: adam_lr x g_cl_loss_w x rec_loss_w")
    parser.add_argument("--tuner_seed", type=int, default=0, help="seed of the Bayesian oracle")
    parser.add_argument("--eval_max_per_class", type=int, default=None,
                        help="evaluate on at most N test faces per emotion (default all)")
    parser.add_argument("--stats_dir", default=None, help="cache of real-face features "
                        "(default saved_models/fid_stats)")
    args, script_args = parser.parse_known_args(argv)

    experiment = load_experiment(args.experiment)
    for name in SET_BY_SWEEP:
        if any(a == f"--{name}" or a.startswith(f"--{name}=") for a in script_args):
            raise SweepError(f"--{name}: set by the sweep for each trial (runs go to "
                             f"{args.directory}/saved_models/trial_<id>)")
    config, _ = train_config.parse_config(experiment, script_args)  # unknown or malformed flags fail here
    if config.distribute == "multi_worker":
        raise SweepError("--distribute multi_worker: spread a sweep over hosts with KerasTuner's "
                         "chief/worker mode instead (see --help); within a trial use mirrored or "
                         "data_parallel")
    if args.algorithm == "bayes" and importlib.util.find_spec("sklearn") is None:
        raise SweepError("--algorithm bayes needs scikit-learn: pip install 'keras-tuner[bayesian]'")
    space = parse_space(args.space, experiment, args.algorithm)
    grid_size = math.prod(len(v) for v in space.values()) if args.algorithm == "grid" else None
    max_trials = args.max_trials if args.max_trials is not None else grid_size or DEFAULT_BAYES_TRIALS
    if max_trials < 1:
        raise SweepError(f"--max_trials must be at least 1, got {max_trials}")
    sweep = Sweep(experiment, args.algorithm, args.objective, pathlib.Path(args.directory), space,
                  script_args, max_trials, args.tuner_seed, args.eval_max_per_class, args.stats_dir)
    _check_resumed(sweep)
    return sweep


def _check_resumed(sweep):
    """A sweep folder belongs to one sweep: record its settings, or check them on a re-run."""
    path = sweep.directory / SWEEP_FILE
    settings = sweep.settings()
    if path.exists():
        saved = json.loads(path.read_text())
        changed = [key for key in settings if saved.get(key) != settings[key]]
        if changed:
            raise SweepError(f"{path}: this folder holds a sweep with another {changed[0]} "
                             f"({saved.get(changed[0])!r}, now {settings[changed[0]]!r}); resume it "
                             "with the same command or choose another --directory")
        return
    atomic.write_text(path, json.dumps(settings, indent=2))


def _is_worker():
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and "chief" not in os.environ.get(
        "KERASTUNER_TUNER_ID", "")


def main(argv=None):
    try:
        sweep = parse_args(argv)
    except (SweepError, train_config.ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:  # KerasTuner (and Keras) load from here on
        tuner = sweep.tuner()
        tuner.search()
    except (train_config.ConfigError, data_loader.DataError, kt.errors.FatalError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if _is_worker():  # the chief may be gone already; it reports the results
        print(f"worker {os.environ['KERASTUNER_TUNER_ID']}: no more trials")
        return 0
    tuner.results_summary(num_trials=min(10, sweep.max_trials))
    print(f"\ncompare the trials: python compare_runs.py {sweep.directory / 'saved_models'}/trial_* "
          f"--out {sweep.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
