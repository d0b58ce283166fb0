"""The training command line: every flag an experiment has, its help, its limits, and whether a
resumed run may change it. Imports no Keras, so `--help` and flag errors answer at once; the
experiment scripts read their flags here before trainer.py (and Keras) loads.

An experiment's `Config` subclasses `TrainConfig`, adds its own fields with `arg(...)`, and may extend
`DEMO` (the --demo recipe) and `check()` (checks across fields).
"""
import argparse
import dataclasses
import math
import pathlib
import re
import sys
from typing import ClassVar


class ConfigError(ValueError):
    """Bad command-line input; reported as one `error: ...` line, exit status 2."""


RUN_NAME = re.compile(r"[A-Za-z0-9._-]+")


def arg(default, help, *, resumable=False, minimum=None, above=None, below=None, choices=None):
    """A Config field with its --help text; `resumable`: --resume may change it; `minimum`: the
    smallest value it accepts; `above`, `below`: open bounds (the value must lie strictly between);
    `choices`: the only values it accepts."""
    return dataclasses.field(default=default, metadata={"help": help, "resumable": resumable,
                                                        "minimum": minimum, "above": above, "below": below,
                                                        "choices": choices})


@dataclasses.dataclass
class TrainConfig:
    data: str = arg("", "FER2013 CSV (.csv/.csv.gz), image folder or the loader's .npz (data_loader.py "
                        "--export); default datasets/fer2013.csv", resumable=True)
    run_name: str = arg("", "run folder name; default: the experiment's id (t1, t2, t3; t1_demo, ...)",
                        resumable=True)
    output_dir: str = arg(".", "where saved_models/<run>/ and images/<run>/ go", resumable=True)
    epochs: int = arg(200, "passes over the Training split", resumable=True, minimum=1)
    batch_size: int = arg(64, "faces per step", minimum=1)
    max_steps: int = arg(0, "stop after this many steps in total (0: no limit)", resumable=True, minimum=0)
    max_minutes: float = arg(0.0, "stop after this many minutes of training, with a checkpoint, grid and "
                                  "generator; --resume continues (0: no limit)", resumable=True, minimum=0)
    sample_interval: int = arg(200, "write a sample grid every N steps", resumable=True, minimum=1)
    checkpoint_interval: int = arg(500, "write a checkpoint every N steps (and at every epoch end)",
                                   resumable=True, minimum=1)
    seed: int = arg(0, "seed of weights, data order, flips and target labels", minimum=0, below=2**32)
    balanced: bool = arg(False, "class-balanced epochs (Disgust is 1.5%% of FER2013)")
    resume: bool = arg(False, "continue the run folder --run_name from its checkpoint", resumable=True)
    demo: bool = arg(False, "synthetic faces, small networks, lr 2e-3, rec_loss_w 10, 700 steps: "
                            "a couple of minutes on CPU (flags given override)")
    eval_every: int = arg(0, "run the evaluation callback every N epochs (0: off)", resumable=True,
                          minimum=0)
    classifier: str = arg("", "expression classifier .keras for --eval_every", resumable=True)
    distribute: str = arg("none", "data parallelism: none, mirrored, multi_worker (TF), "
                                  "data_parallel (JAX); see distribute.py", resumable=True)
    d_gan_loss_w: float = arg(1.0, "D: adversarial loss weight", minimum=0)
    d_cl_loss_w: float = arg(1.0, "D: emotion-head loss weight (real faces; 'no emotion' for translations)",
                             minimum=0)
    g_gan_loss_w: float = arg(1.0, "G: adversarial loss weight", minimum=0)
    g_cl_loss_w: float = arg(1.0, "G: classification loss weight (lambda_cl)", minimum=0)
    rec_loss_w: float = arg(1.0, "G: cycle/reconstruction L1 weight (lambda_cyc)", minimum=0)
    adam_lr: float = arg(2e-4, "Adam learning rate (G and D)", above=0)
    adam_beta_1: float = arg(0.5, "Adam beta_1", minimum=0, below=1)
    adam_beta_2: float = arg(0.999, "Adam beta_2", minimum=0, below=1)
    d_g_ratio: int = arg(1, "update D on every step and G on every Nth (steps 0, N, 2N, ...)", minimum=1)
    d_warmup_steps: int = arg(0, "update only D for the first N steps; then G joins as --d_g_ratio says "
                                 "(steps N, N + ratio, ...)", minimum=0)
    init_generator: str = arg("", "a new run's G (and its moving average) starts from this saved generator "
                                  "folder of the same script and flags (e.g. saved_models/pretrained); D and "
                                  "both Adam states start afresh")
    ema_decay: float = arg(0.999, "grids, evaluation and the saved generator use an exponential moving "
                                  "average of G's weights with this decay per G update (0: off, G itself)",
                           minimum=0, below=1)

    # --demo: synthetic faces and a fast recipe (higher learning rate, lambda_cyc 10): a couple of
    # minutes on 2 CPU cores, and the setting tests/test_learning.py holds to >= 80 %. It updates G
    # on every step and shows G itself (no EMA: the learning tests judge G as they always have; at
    # decay 0.999 the average spans ~1000 updates, more than the demo's 700). Experiments add their
    # own fields (their networks' width).
    DEMO: ClassVar[dict] = {"batch_size": 24, "adam_lr": 2e-3, "rec_loss_w": 10.0, "epochs": 1000,
                            "max_steps": 700, "sample_interval": 100, "checkpoint_interval": 100,
                            "d_g_ratio": 1, "ema_decay": 0.0}
    DEMO_FACES: ClassVar[dict] = {"train_per_class": 64, "test_per_class": 16}
    # Flags added after run folders were written, with what those runs trained with.
    PREDATED: ClassVar[dict] = {"d_g_ratio": 1, "ema_decay": 0.0}

    @classmethod
    def saved_values(cls, saved):
        """Field values from a run's config.json (a dict); flags the run predates as it trained."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return {**cls.PREDATED, **{k: v for k, v in saved.items() if k in fields}}

    @classmethod
    def resumable_fields(cls):
        """Flags a resumed run may change; every other one must match the run's config.json."""
        return {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")}

    def check_fields(self, names=None):
        """Raise ConfigError for a field (of `names`; default all) outside its limits, or a --run_name
        that is more than a plain folder name (a path would write outside saved_models/)."""
        for field in dataclasses.fields(self):
            if names is not None and field.name not in names:
                continue
            value, limits = getattr(self, field.name), field.metadata
            wanted = (int, float) if field.type is float else field.type  # JSON writes 1.0 as 1
            if not isinstance(value, wanted) or (isinstance(value, bool) and field.type is not bool):
                raise ConfigError(f"--{field.name} must be of type {field.type.__name__}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{field.name} must be a finite number, got {value}")
            if limits.get("minimum") is not None and value < limits["minimum"]:
                more = "at least 1" if limits["minimum"] == 1 else f"{limits['minimum']} or more"
                raise ConfigError(f"--{field.name} must be {more}, got {value}")
            if limits.get("above") is not None and value <= limits["above"]:
                raise ConfigError(f"--{field.name} must be more than {limits['above']}, got {value}")
            if limits.get("below") is not None and value >= limits["below"]:
                raise ConfigError(f"--{field.name} must be less than {limits['below']}, got {value}")
            if limits.get("choices") and value not in limits["choices"]:
                raise ConfigError(f"--{field.name} must be one of {', '.join(limits['choices'])}, got {value!r}")
        if self.run_name and (not RUN_NAME.fullmatch(self.run_name) or self.run_name in (".", "..")):
            raise ConfigError(f"--run_name {self.run_name!r}: give a plain folder name (letters, digits, "
                              "'.', '_', '-'); it goes under saved_models/ and images/")

    def check(self):
        """Raise ConfigError for a value no run can use (limits of single fields, then across fields)."""
        self.check_fields()
        if self.eval_every and not self.classifier:
            raise ConfigError("--eval_every needs --classifier PATH (an expression classifier .keras)")
        if self.classifier and not pathlib.Path(self.classifier).is_file():
            raise ConfigError(f"{self.classifier}: classifier file not found (train one with classifier.py)")
        if self.init_generator and not self.resume and not pathlib.Path(self.init_generator).is_dir():
            raise ConfigError(f"{self.init_generator}: --init_generator folder not found (give a run folder "
                              "with a generator's .keras files and config.json)")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def parse_config(experiment, argv=None):
    """An experiment's Config from the command line. Returns (config, names of the flags given)."""
    config_cls = experiment.Config
    parser = _ArgumentParser(prog=pathlib.Path(experiment.__file__).name,
                             description=(experiment.__doc__ or "").strip().splitlines()[0],
                             argument_default=argparse.SUPPRESS)
    for field in dataclasses.fields(config_cls):
        help_text = f"{field.metadata.get('help', '')} (default: {field.default!r})"
        if field.type is bool:
            # A switch that is on by default also gets its --no-<name>.
            parser.add_argument(f"--{field.name}", help=help_text,
                                action=argparse.BooleanOptionalAction if field.default else "store_true")
        else:
            parser.add_argument(f"--{field.name}", type=field.type, help=help_text,
                                choices=field.metadata.get("choices"), metavar=field.name.upper())
    given = vars(parser.parse_args(argv))
    values = {**(config_cls.DEMO if given.get("demo") else {}), **given}
    config = config_cls(**values)
    config.check_fields(set(given))  # here, before Keras loads: a bad value answers at once
    return config, set(given)


def parse_or_exit(experiment, argv=None):
    """parse_config for a script's main: a bad flag is one `error: ...` line and exit status 2."""
    try:
        return parse_config(experiment, argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def train_from_command_line(experiment, argv=None):
    """An experiment script's main: its flags (a bad one: one `error: ...` line, exit status 2), then
    the trainer, which loads Keras only now that the flags are known to be good."""
    config, given = parse_or_exit(experiment, argv)
    import trainer
    trainer.main(experiment, config, given)
