"""The experiment scripts: which ones exist, what each must define, and loading one by name.

`EXPERIMENTS` is the registry: a name that a run folder's config.json or sweep.py's command line
gives is imported only if it is listed here, from this repository, so a downloaded run folder cannot
make a tool import its own code. A new experiment script is one line here.
"""
import dataclasses
import importlib
import importlib.util
import pathlib
import sys
from typing import Protocol

from repo import REPO_ROOT
from train_config import ConfigError, TrainConfig

EXPERIMENTS = ("ccyclegan_t1", "ccyclegan_t2", "ccyclegan_t3")
DISCRIMINATOR = "d"  # build_networks' key of D; every other network is a part of G


class ExperimentError(ConfigError):
    """An unknown experiment name or a module that breaks the contract; one line, exit status 2."""


class Experiment(Protocol):
    """What the trainer, the run loader and sweep.py need of an experiment script (a module)."""

    Config: type  # a dataclass subclassing train_config.TrainConfig; its fields are the script's flags

    def build_networks(self, config):
        """{name: keras.Model}: DISCRIMINATOR is D, the others make up G (saved as <name>.keras)."""

    def draw_targets(self, labels, rng):
        """What a step draws for a batch of int labels, on the host from `rng`: the int32 target
        emotions (T1, T2), or a dict of arrays holding them (T3); the Batch's `targets`."""

    def generate(self, nets, batch, config):
        """G's forward pass on a Batch(images, labels, targets): a dict of the tensors the losses need."""

    def discriminator_loss(self, nets, batch, generated, config):
        """(total, {term: value}) of D."""

    def generator_loss(self, nets, batch, generated, config):
        """(total, {term: value}) of G."""

    def translate(self, nets, images, target_labels):
        """Faces (N, 48, 48, 1) in [-1, 1] translated to the target emotions."""

    def reconstruct(self, nets, images, labels, config):
        """The faces rebuilt the way the run's cycle/reconstruction loss rebuilds them (a sample
        grid's last column; evaluate.py's reconstruction L1 always goes through the translation)."""

    # Optional: attention_masks(nets, images, target_labels) -> G's masks (N, 48, 48, 1) in [0, 1]
    # for translate's faces, or None where the run's G has none (figures.py --masks).


FUNCTIONS = ("build_networks", "draw_targets", "generate", "discriminator_loss", "generator_loss",
             "translate", "reconstruct")


def check(module):
    """`module` if it fulfils the Experiment contract; ExperimentError naming what is missing."""
    config = getattr(module, "Config", None)
    missing = [name for name in FUNCTIONS if not callable(getattr(module, name, None))]
    if not (isinstance(config, type) and dataclasses.is_dataclass(config) and issubclass(config, TrainConfig)):
        missing.insert(0, "Config (a dataclass subclassing train_config.TrainConfig)")
    if missing:
        raise ExperimentError(f"{getattr(module, '__name__', module)}: not an experiment script "
                              f"(missing {', '.join(missing)})")
    return module


def name_of(module):
    """The registry name of an experiment module (its file's stem, also when it runs as __main__)."""
    return pathlib.Path(module.__file__).stem


def load(name, source="experiment"):
    """The registered experiment `name` (e.g. "ccyclegan_t2"), imported from this repository and checked.

    `source` names where the name came from, for the error message."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"{source}: unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.find_spec(name)  # where it would come from, before any of its code runs
    if spec is None or spec.origin is None or pathlib.Path(spec.origin).resolve() != REPO_ROOT / f"{name}.py":
        raise ExperimentError(f"{source}: {name!r} would be imported from "
                              f"{spec and spec.origin}, not from {REPO_ROOT}")
    return check(importlib.import_module(name))
