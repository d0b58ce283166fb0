"""Training machinery shared by the experiment scripts -- the only backend-specific code.

An experiment script (ccyclegan_t1.py, ccyclegan_t2.py) is a module that defines:

    Config                         a dataclass subclassing TrainConfig (its CLI is built from it)
    build_networks(config)         {name: keras.Model}; "d" is the discriminator, the rest make up G
    draw_targets(labels, rng)      int32 target emotions for a batch, drawn on the host
    generate(nets, batch)          G's forward pass: a dict of float tensors the losses need
    discriminator_loss(nets, batch, generated, config) -> (total, {term: value})
    generator_loss(nets, batch, generated, config)     -> (total, {term: value})
    translate(nets, images, target_labels)             -> translated images
    reconstruct(nets, images, labels)                  -> the faces rebuilt (grid's last column)

and its `main` calls `trainer.main(module)`. One training step (`GAN.train_step`) runs G forward
once, updates D on real faces vs. those translations, then updates G against the updated D through
the same forward pass; the three backends differ only in how gradients are taken (`_Autodiff*`).
Data parallelism (`--distribute`) comes from distribute.py: the trainer builds the model in its
scope, scales the differentiated losses by its `grad_scale` and feeds `fit` through it.

Entry points for other code: `main(experiment, argv)`; `prepare(experiment, argv) -> Run` and
`train(run) -> GAN` (the two halves of main); `load_translator(run_dir) -> Translator` with
`translate(images, target_labels)` and `reconstruct(images, labels)`; `GAN.translate` the same
during training (evaluate.EvaluationCallback uses it).

Outputs of a run (`--run_name`, under `--output_dir`):
    saved_models/<run>/config.json          the full config (+ experiment, backend)
    saved_models/<run>/train_log.jsonl      one line per step: every loss term
    saved_models/<run>/tensorboard/         the same scalars for TensorBoard
    saved_models/<run>/checkpoint.npz       G, D, both optimizers, step (atomic, last good one)
    saved_models/<run>/<generator part>.keras   final generator (T1: generator, T2: g_enc + g_dec)
    images/<run>/step_0000200.png           sample grids from fixed test faces
"""
import argparse
import dataclasses
import functools
import importlib
import itertools
import json
import math
import pathlib
import sys
import time
from collections import namedtuple

import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras
import numpy as np
from keras import ops

import atomic
import data_loader
import distribute
import grids
from data_loader import EMOTIONS, NUM_CLASSES, DataError

BACKEND = keras.backend.backend()
REPO_ROOT = pathlib.Path(__file__).resolve().parent
CHECKPOINT = "checkpoint.npz"
LOG = "train_log.jsonl"

Batch = namedtuple("Batch", "images labels targets")


class ConfigError(ValueError):
    """Bad command-line input; reported as one `error: ...` line, exit status 2."""


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/Inf; the message names the step and the term."""


# ---------------------------------------------------------------------------------------------
# Config and command line
# ---------------------------------------------------------------------------------------------

def arg(default, help):
    """A Config field with its --help text."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class TrainConfig:
    data: str = arg("", "FER2013 CSV (.csv/.csv.gz) or image folder; default datasets/fer2013.csv")
    run_name: str = arg("", "run folder name; default: the experiment's id (t1, t2; t1_demo, t2_demo)")
    output_dir: str = arg(".", "where saved_models/<run>/ and images/<run>/ go")
    epochs: int = arg(200, "passes over the Training split")
    batch_size: int = arg(64, "faces per step")
    max_steps: int = arg(0, "stop after this many steps in total (0: no limit)")
    max_minutes: float = arg(0.0, "stop after this many minutes of training, with a checkpoint, grid and "
                                  "generator; --resume continues (0: no limit)")
    sample_interval: int = arg(200, "write a sample grid every N steps")
    checkpoint_interval: int = arg(500, "write a checkpoint every N steps (and at every epoch end)")
    seed: int = arg(0, "seed of weights, data order, flips and target labels")
    balanced: bool = arg(False, "class-balanced epochs (Disgust is 1.5%% of FER2013)")
    resume: bool = arg(False, "continue the run folder --run_name from its checkpoint")
    demo: bool = arg(False, "synthetic faces, small networks, lr 2e-3, rec_loss_w 10, 700 steps: "
                            "a couple of minutes on CPU (flags given override)")
    eval_every: int = arg(0, "run evaluate.EvaluationCallback every N epochs (0: off)")
    classifier: str = arg("", "expression classifier .keras for --eval_every")
    distribute: str = arg("none", "data parallelism: none, mirrored, multi_worker (TF), "
                                  "data_parallel (JAX); see distribute.py")
    d_gan_loss_w: float = arg(1.0, "D: adversarial loss weight")
    d_cl_loss_w: float = arg(1.0, "D: emotion-head loss weight (real faces; 'no emotion' for translations)")
    g_gan_loss_w: float = arg(1.0, "G: adversarial loss weight")
    g_cl_loss_w: float = arg(1.0, "G: classification loss weight (lambda_cl)")
    rec_loss_w: float = arg(1.0, "G: cycle/reconstruction L1 weight (lambda_cyc)")
    adam_lr: float = arg(2e-4, "Adam learning rate (G and D)")
    adam_beta_1: float = arg(0.5, "Adam beta_1")
    adam_beta_2: float = arg(0.999, "Adam beta_2")


# Flags a resumed run may change; everything else must match the run's config.json.
RESUMABLE = {"data", "epochs", "max_steps", "max_minutes", "sample_interval", "checkpoint_interval",
             "eval_every", "classifier", "resume", "output_dir", "run_name", "distribute"}
# --demo: synthetic faces, small networks and a fast recipe (higher learning rate, lambda_cyc 10):
# a couple of minutes on 2 CPU cores, and the setting tests/test_learning.py holds to >= 80 %.
DEMO = {"base_filters": 12, "batch_size": 24, "adam_lr": 2e-3, "rec_loss_w": 10.0, "epochs": 1000,
        "max_steps": 700, "sample_interval": 100, "checkpoint_interval": 100}
DEMO_FACES = {"train_per_class": 64, "test_per_class": 16}


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def parse_config(experiment, argv=None):
    """Config from the command line. Returns (config, names of the flags given explicitly)."""
    config_cls = experiment.Config
    parser = _ArgumentParser(prog=pathlib.Path(experiment.__file__).name,
                             description=(experiment.__doc__ or "").strip().splitlines()[0],
                             argument_default=argparse.SUPPRESS)
    for field in dataclasses.fields(config_cls):
        help_text = f"{field.metadata.get('help', '')} (default: {field.default!r})"
        if field.type is bool:
            parser.add_argument(f"--{field.name}", action="store_true", help=help_text)
        else:
            parser.add_argument(f"--{field.name}", type=field.type, help=help_text,
                                metavar=field.name.upper())
    given = vars(parser.parse_args(argv))
    values = {**(DEMO if given.get("demo") else {}), **given}
    values = {k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(config_cls)}}
    return config_cls(**values), set(given)


def _check_config(config):
    for name in ("epochs", "batch_size", "sample_interval", "checkpoint_interval"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name} must be at least 1, got {getattr(config, name)}")
    for name in ("max_steps", "max_minutes", "eval_every"):
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} must be 0 or more, got {getattr(config, name)}")
    if getattr(config, "base_filters", 1) < 1:
        raise ConfigError(f"--base_filters must be at least 1, got {config.base_filters}")
    if config.eval_every and not config.classifier:
        raise ConfigError("--eval_every needs --classifier PATH (an expression classifier .keras)")
    if config.classifier and not pathlib.Path(config.classifier).is_file():
        raise ConfigError(f"{config.classifier}: classifier file not found (train one with classifier.py)")


def experiment_id(experiment):
    return pathlib.Path(experiment.__file__).stem.removeprefix("ccyclegan_")


def run_dirs(config, experiment):
    name = config.run_name or experiment_id(experiment) + ("_demo" if config.demo else "")
    root = pathlib.Path(config.output_dir)
    return root / "saved_models" / name, root / "images" / name


def _resumed_config(experiment, config, given, run_dir):
    """The run's saved config, with the flags that may change on resume taken from the CLI."""
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir / CHECKPOINT}: no checkpoint to resume from")
    saved = json.loads((run_dir / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(experiment.Config)}
    for name in sorted(given - RESUMABLE):
        if name in fields and getattr(config, name) != saved.get(name):
            raise ConfigError(f"--{name} {getattr(config, name)!r} differs from the run's "
                              f"{saved.get(name)!r} ({run_dir / 'config.json'}); it cannot change on --resume")
    values = {k: v for k, v in saved.items() if k in fields}
    values.update({k: getattr(config, k) for k in given & RESUMABLE & fields})
    return experiment.Config(**values)


# ---------------------------------------------------------------------------------------------
# The GAN model: one train step, three backends
# ---------------------------------------------------------------------------------------------

class GAN(keras.Model):
    """G and D of one experiment, trained by `fit`; `translate` serves evaluation and grids."""

    def __init__(self, experiment, config, nets, run_dir=None, grad_scale=1.0, vector_logs=False):
        super().__init__(name="gan")
        self.experiment, self.config, self.run_dir = experiment, config, run_dir
        # Data parallelism (distribute.py): TF sums the replicas' gradients, so each replica
        # differentiates grad_scale x its loss; multi-worker TF wants logs of shape (1,).
        self.grad_scale, self.vector_logs = grad_scale, vector_logs
        self.nets = nets
        self.g_networks = [net for name, net in nets.items() if name != "d"]
        self.discriminator = nets["d"]
        for net in nets.values():
            if net.non_trainable_variables:
                raise ValueError(f"{net.name}: the trainer needs networks without non-trainable "
                                 "state (no BatchNormalization or Dropout)")
        self.g_variables = [v for net in self.g_networks for v in net.trainable_variables]
        self.d_variables = list(self.discriminator.trainable_variables)
        self.g_optimizer = self._adam("g_adam")
        self.d_optimizer = self._adam("d_adam")
        d_ids = {id(v) for v in self.d_variables}
        # One optimizer object for Keras (JAX keeps its variables in the train state); each
        # update still goes through its own Adam.
        self.compile(optimizer=keras.optimizers.MultiOptimizer(
            lambda v: self.d_optimizer if id(v) in d_ids else self.g_optimizer))
        self.optimizer.build(self.g_variables + self.d_variables)
        self.built = True
        self._inference = None
        self.step = 0          # global step, counted on the host by StepLog
        self.failure = None    # message of a non-finite loss/weight, set by the callbacks

    def _adam(self, name):
        c = self.config
        return keras.optimizers.Adam(c.adam_lr, beta_1=c.adam_beta_1, beta_2=c.adam_beta_2, name=name)

    def _gan_step(self, batch, autodiff):
        exp, nets, config = self.experiment, self.nets, self.config
        # 1. translate the batch; the forward pass is kept for G's update in step 3
        generated, g_backward = autodiff.forward(self.g_variables, lambda: exp.generate(nets, batch))
        # 2. update D on real faces vs. the translations (held constant)
        constant = keras.tree.map_structure(ops.stop_gradient, generated)
        (_, d_terms), d_grads = autodiff.value_and_grad(
            self.d_variables, self._scaled(lambda: exp.discriminator_loss(nets, batch, constant, config)))
        autodiff.apply(self.d_optimizer, d_grads, self.d_variables)
        # 3. update G against the updated D
        (_, g_terms), g_grads = g_backward(
            self._scaled(lambda gen: exp.generator_loss(nets, batch, gen, config)))
        autodiff.apply(self.g_optimizer, g_grads, self.g_variables)
        logs = {**{f"D/{k}": v for k, v in d_terms.items()}, **{f"G/{k}": v for k, v in g_terms.items()}}
        return {k: ops.reshape(v, (1,)) for k, v in logs.items()} if self.vector_logs else logs

    def _scaled(self, loss_fn):
        """loss_fn returning (grad_scale x total, terms + the unscaled total): what is
        differentiated vs. what is logged."""
        def scaled(*args):
            total, terms = loss_fn(*args)
            return total * self.grad_scale, {**terms, "total": total}
        return scaled

    if BACKEND == "jax":
        def train_step(self, state, data):
            trainable, non_trainable, optimizer_values, metric_values = state
            groups = (self.trainable_variables, self.non_trainable_variables,
                      self.optimizer.variables, self.metrics_variables)
            values = (*trainable, *non_trainable, *optimizer_values, *metric_values)
            variables = [v for group in groups for v in group]
            with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                logs = self._gan_step(Batch(*data), _AutodiffJax(scope, variables))
            return logs, tuple([scope.get_current_value(v) for v in group] for group in groups)
    else:
        def train_step(self, data):
            autodiff = _AutodiffTensorflow() if BACKEND == "tensorflow" else _AutodiffTorch()
            return self._gan_step(Batch(*data), autodiff)

    if BACKEND == "tensorflow":
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            # Under a tf.distribute strategy, Keras' fit() all-reduces a first batch here only to
            # build what is unbuilt; __init__ built everything, and that reduction of a tuple
            # fails under MultiWorkerMirroredStrategy (keras-team/keras#20585).
            if not (self.built and self.optimizer.built):
                super()._maybe_symbolic_build(iterator, data_batch)

    # -- inference -------------------------------------------------------------------------

    def translate(self, images, target_labels, batch_size=256):
        """float32 faces (N, 48, 48, 1) in [-1, 1] + int targets (N,) or scalar -> np.ndarray."""
        return self._translator().translate(images, target_labels, batch_size)

    def reconstruct(self, images, labels, batch_size=256):
        return self._translator().reconstruct(images, labels, batch_size)

    def _translator(self):
        if hasattr(self, "jax_state_sync"):
            self.jax_state_sync()  # JAX fit() keeps the fresh weights outside the variables
        if self._inference is None:
            self._inference = Translator(self.experiment, self.config, self.nets)
        return self._inference


class _AutodiffTensorflow:
    def forward(self, variables, fn):
        import tensorflow as tf
        tape = tf.GradientTape()
        with tape:
            outputs = fn()

        def backward(loss_fn):
            with tape:  # re-entered: the loss joins the recorded forward pass
                total, terms = loss_fn(outputs)
            return (total, terms), self._dense(tape.gradient(total, variables))
        return outputs, backward

    def value_and_grad(self, variables, fn):
        import tensorflow as tf
        with tf.GradientTape() as tape:
            total, terms = fn()
        return (total, terms), self._dense(tape.gradient(total, variables))

    @staticmethod
    def _dense(grads):
        # Sparse (IndexedSlices) gradients make TF's Adam drift from the other backends.
        import tensorflow as tf
        return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]

    @staticmethod
    def apply(optimizer, grads, variables):
        optimizer.apply(grads, variables)


class _AutodiffTorch:
    def forward(self, variables, fn):
        outputs = fn()
        return outputs, lambda loss_fn: self._backward(variables, lambda: loss_fn(outputs))

    def value_and_grad(self, variables, fn):
        return self._backward(variables, fn)

    @staticmethod
    def _backward(variables, fn):
        import torch
        total, terms = fn()
        for v in variables:
            v.value.grad = None
        total.backward()
        return (total, terms), [v.value.grad if v.value.grad is not None else torch.zeros_like(v.value)
                                for v in variables]

    @staticmethod
    def apply(optimizer, grads, variables):
        import torch
        with torch.no_grad():
            optimizer.apply(grads, variables)


class _AutodiffJax:
    """Gradients inside the train step's StatelessScope: values in, values out."""

    def __init__(self, scope, variables):
        self.scope, self.variables = scope, variables

    def _run_with(self, variables, values, fn):
        mapping = [(v, self.scope.get_current_value(v)) for v in self.variables]
        with keras.StatelessScope(state_mapping=mapping + list(zip(variables, values))):
            return fn()

    def _values(self, variables):
        return [self.scope.get_current_value(v) for v in variables]

    def forward(self, variables, fn):
        import jax
        outputs, vjp = jax.vjp(lambda values: self._run_with(variables, values, fn),
                               self._values(variables))

        def backward(loss_fn):
            (total, terms), output_grads = jax.value_and_grad(
                lambda out: self._run_with([], [], lambda: loss_fn(out)), has_aux=True)(outputs)
            return (total, terms), vjp(output_grads)[0]
        return outputs, backward

    def value_and_grad(self, variables, fn):
        import jax
        return jax.value_and_grad(lambda values: self._run_with(variables, values, fn),
                                  has_aux=True)(self._values(variables))

    @staticmethod
    def apply(optimizer, grads, variables):
        optimizer.apply(grads, variables)


# ---------------------------------------------------------------------------------------------
# Checkpoints: one .npz with G, D, both optimizers and the step, written atomically
# ---------------------------------------------------------------------------------------------

def _weights(model):
    """Every value a checkpoint holds, by a stable name."""
    arrays = {}
    for name, net in model.nets.items():
        arrays.update({f"net/{name}/{i}": w for i, w in enumerate(net.get_weights())})
    for name, opt in (("g", model.g_optimizer), ("d", model.d_optimizer)):
        arrays.update({f"opt/{name}/{i}": ops.convert_to_numpy(v.value)
                       for i, v in enumerate(opt.variables)})
    return arrays


def save_checkpoint(model, run_dir, state):
    """Write checkpoint.npz atomically; refuses (NonFiniteError) to store non-finite weights."""
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
    arrays = _weights(model)
    for key, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise NonFiniteError(f"non-finite weights after step {state['step']} in {key}")
    with atomic.replacing(pathlib.Path(run_dir) / CHECKPOINT) as temporary:
        np.savez(temporary, state=np.array(json.dumps(state)), **arrays)


def load_checkpoint(model, run_dir):
    """Restore G, D and both optimizers into `model`; returns the saved state dict."""
    path = pathlib.Path(run_dir) / CHECKPOINT
    with np.load(path) as archive:
        saved = {k: archive[k] for k in archive.files}
    expected = _weights(model)
    mismatched = [k for k in expected if k not in saved or saved[k].shape != expected[k].shape]
    if mismatched or len(saved) != len(expected) + 1:
        raise ConfigError(f"{path}: does not match these networks (first difference: "
                          f"{(mismatched or ['extra arrays'])[0]})")
    for name, net in model.nets.items():
        net.set_weights([saved[f"net/{name}/{i}"] for i in range(len(net.weights))])
    for name, opt in (("g", model.g_optimizer), ("d", model.d_optimizer)):
        for i, v in enumerate(opt.variables):
            v.assign(saved[f"opt/{name}/{i}"])
    return json.loads(str(saved["state"]))


# ---------------------------------------------------------------------------------------------
# Callbacks: per-step log + NaN guard, checkpoints, sample grids
# ---------------------------------------------------------------------------------------------

class StepLog(keras.callbacks.Callback):
    """Counts steps; logs every loss term (JSONL + TensorBoard); stops at the last step or on a
    non-finite loss."""

    def __init__(self, run_dir, steps_per_epoch, last_step):
        super().__init__()
        self.steps_per_epoch, self.last_step = steps_per_epoch, last_step
        self.file = open(pathlib.Path(run_dir) / LOG, "a", buffering=1)
        self.started = time.time()
        try:
            import tensorflow as tf
            self.tf = tf
            self.writer = tf.summary.create_file_writer(str(pathlib.Path(run_dir) / "tensorboard"))
        except ImportError:
            print("note: tensorflow is not installed; TensorBoard scalars are off", file=sys.stderr)
            self.writer = None

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
        model.step += 1
        losses = {k: float(v) for k, v in (logs or {}).items() if "/" in k}
        record = {"step": model.step, "epoch": (model.step - 1) // self.steps_per_epoch,
                  "time": round(time.time() - self.started, 3), **losses}
        self.file.write(json.dumps(record) + "\n")
        if self.writer is not None:
            with self.writer.as_default(step=model.step):
                for name, value in losses.items():
                    self.tf.summary.scalar(name, value)
        bad = [name for name, value in losses.items() if not math.isfinite(value)]
        if bad:
            model.failure = f"non-finite loss at step {model.step}: {bad[0]} = {losses[bad[0]]}"
        model.stop_training = bool(bad) or model.step >= self.last_step

    def close(self):
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class Checkpointer(keras.callbacks.Callback):
    def __init__(self, run_dir, interval, state_fn):
        super().__init__()
        self.run_dir, self.interval, self.state_fn = run_dir, interval, state_fn
        self.saved_step = None

    def save(self):
        model = self.model
        if model.failure or self.saved_step == model.step:
            return
        try:
            save_checkpoint(model, self.run_dir, self.state_fn())
            self.saved_step = model.step
        except NonFiniteError as err:
            model.failure, model.stop_training = str(err), True

    def on_train_batch_end(self, batch, logs=None):
        if self.model.step % self.interval == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()


class SampleGrid(keras.callbacks.Callback):
    """Every `interval` steps: fixed faces (rows) x 7 target emotions + reconstruction (cols)."""

    def __init__(self, images_dir, faces, labels, interval):
        super().__init__()
        self.images_dir, self.faces, self.labels, self.interval = images_dir, faces, labels, interval

    def write(self):
        model, n = self.model, len(self.faces)
        targets = np.repeat(np.arange(NUM_CLASSES), n)
        translated = model.translate(np.tile(self.faces, (NUM_CLASSES, 1, 1, 1)), targets)
        columns = [*np.split(translated, NUM_CLASSES), model.reconstruct(self.faces, self.labels)]
        return grids.write_grid(pathlib.Path(self.images_dir) / f"step_{model.step:07d}.png",
                                [self.faces, *columns], ["input", *EMOTIONS, "recon."],
                                [EMOTIONS[int(label)] for label in self.labels], title=f"step {model.step}")

    def on_train_batch_end(self, batch, logs=None):
        if self.model.step % self.interval == 0 and not self.model.failure:
            self.write()


class RunReport(keras.callbacks.Callback):
    """What a run costs, said while it runs: where every output goes (at once), the whole run's
    duration estimated from the first measured steps, a sample grid within the first minutes, and
    the --max_minutes bound (a clean stop: the trainer then checkpoints and saves the generator)."""

    MEASURED_STEPS = 5        # steps timed after the first one (which also traces/compiles)
    EARLY_GRID_SECONDS = 90   # a grid this soon, however long --sample_interval is

    def __init__(self, run, model, step_log, grid):
        super().__init__()
        self.run, self.step_log, self.grid = run, step_log, grid
        self.started, self.first_step = time.time(), model.step
        self.timed_from = self.early_grid = None
        config = run.config
        generator = " + ".join(f"{name}.keras" for name in model.nets if name != "d")
        print(f"outputs of this run:\n"
              f"  {run.run_dir}/config.json, train_log.jsonl (losses per step), tensorboard/\n"
              f"  {run.run_dir}/{CHECKPOINT}   every {config.checkpoint_interval} steps, each epoch "
              f"end and at the end (--resume continues from it)\n"
              f"  {run.run_dir}/{generator}   the generator, at the end\n"
              f"  {run.images_dir}/step_*.png   sample grids: at step 0, after about "
              f"{self.EARLY_GRID_SECONDS} s, then every {config.sample_interval} steps", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        model, config, now = self.model, self.run.config, time.time()
        if model.step == self.first_step + 1:
            self.timed_from = (model.step, now)
        elif self.timed_from and model.step == self.timed_from[0] + self.MEASURED_STEPS:
            self._print_estimate((now - self.timed_from[1]) / self.MEASURED_STEPS, now)
        if self.early_grid is None and now - self.started >= self.EARLY_GRID_SECONDS:
            self.early_grid = model.step
            if model.step % config.sample_interval and not model.failure:
                print(f"\nearly sample grid: {self.grid.write()}", flush=True)
        if config.max_minutes and now - self.started >= 60 * config.max_minutes and not model.stop_training:
            self.step_log.last_step, model.stop_training = model.step, True
            print(f"\n--max_minutes {config.max_minutes:g} reached at step {model.step}; continue with "
                  f"--run_name {self.run.run_dir.name} --resume (--max_minutes 0: no limit)", flush=True)

    def _print_estimate(self, seconds_per_step, now):
        config, steps_per_epoch = self.run.config, self.step_log.steps_per_epoch
        full = config.epochs * steps_per_epoch
        left = self.step_log.last_step - self.model.step
        if config.max_minutes:
            left = min(left, int((60 * config.max_minutes - (now - self.started)) / seconds_per_step))
        print(f"\ntiming: {seconds_per_step:.2f} s/step on {self.run.parallel.describe()}; "
              f"the full run ({config.epochs} epochs x {steps_per_epoch} steps = {full:,} steps) takes "
              f"about {_duration(full * seconds_per_step)}; this run stops in about {max(left, 0):,} steps, "
              f"{_duration(max(left, 0) * seconds_per_step)}", flush=True)


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} days"


# ---------------------------------------------------------------------------------------------
# Running an experiment
# ---------------------------------------------------------------------------------------------

def main(experiment, argv=None):
    """The experiment scripts' entry point: CLI -> train. Exit 2 on bad input, 1 on NaN/Inf."""
    try:
        train(prepare(experiment, argv))
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


Run = namedtuple("Run", "experiment config run_dir images_dir dataset resume parallel")


def prepare(experiment, argv=None):
    """Parse and check the CLI, find the data, set up the run folders; raises ConfigError/DataError."""
    config, given = parse_config(experiment, argv)
    run_dir, images_dir = run_dirs(config, experiment)
    if config.resume:
        config = _resumed_config(experiment, config, given, run_dir)
    try:
        parallel = distribute.setup(config.distribute)  # before any TensorFlow op runs
    except distribute.DistributeError as err:
        raise ConfigError(str(err)) from None
    if not config.resume and parallel.is_chief and run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir}: run folder exists; pass --resume to continue it or choose "
                          "another --run_name")
    _check_config(config)
    if config.batch_size % parallel.num_replicas:
        raise ConfigError(f"--batch_size {config.batch_size} does not split evenly over "
                          f"{parallel.num_replicas} replicas")
    if config.demo and not config.data:
        config.data = str(pathlib.Path(config.output_dir) / "datasets" / "synthetic_faces.csv")
        if not pathlib.Path(config.data).exists():
            import synthetic_faces
            synthetic_faces.write_synthetic_csv(config.data, seed=config.seed, **DEMO_FACES)
    dataset = data_loader.load_fer2013(config.data or None)
    train_split = dataset.split("Training")
    if len(train_split) < config.batch_size:
        raise ConfigError(f"{dataset.source}: {len(train_split)} Training faces, fewer than one "
                          f"batch of {config.batch_size}")
    if not parallel.is_chief:  # only the chief writes into the run folder
        run_dir, images_dir = distribute.worker_dirs(run_dir, images_dir, copy=("config.json", CHECKPOINT, LOG))
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**dataclasses.asdict(config), "experiment": pathlib.Path(experiment.__file__).stem,
              "backend": BACKEND, "data_source": dataset.source}
    atomic.write_text(run_dir / "config.json", json.dumps(record, indent=2))
    return Run(experiment, config, run_dir, images_dir, dataset, config.resume, parallel)


def build_model(experiment, config, run_dir=None, parallel=None):
    """G, D and their optimizers, seeded; built in the data-parallel scope when there is one."""
    parallel = parallel or distribute.SingleDevice()
    keras.utils.set_random_seed(config.seed)
    with parallel.scope():
        return GAN(experiment, config, experiment.build_networks(config), run_dir=run_dir,
                   grad_scale=parallel.grad_scale, vector_logs=parallel.vector_logs)


def batch_stream(experiment, batches, seed, epoch, skip):
    """Batches of `epoch` from index `skip` on, with host-drawn targets seeded by (seed, step)."""
    for index, (images, labels) in enumerate(batches.epoch(epoch)):
        if index >= skip:
            rng = np.random.default_rng([seed, epoch * batches.steps_per_epoch + index])
            yield images, labels, experiment.draw_targets(labels, rng)


def epochs_from(experiment, batches, seed, first):
    """The batches of every epoch from `first` on."""
    for epoch in itertools.count(first):
        yield from batch_stream(experiment, batches, seed, epoch, 0)


def train(run):
    """Fit epoch by epoch (a resumed run re-enters mid-epoch), then save the generator."""
    experiment, config, run_dir = run.experiment, run.config, run.run_dir
    print(json.dumps({"experiment": experiment_id(experiment), "backend": BACKEND,
                      **dataclasses.asdict(config)}))
    print(f"training on {run.parallel.describe()}")
    model = build_model(experiment, config, run_dir=str(run_dir), parallel=run.parallel)
    batches = data_loader.Batches(run.dataset.split("Training"), config.batch_size, seed=config.seed,
                                  balanced=config.balanced)
    steps_per_epoch = batches.steps_per_epoch
    if run.resume:
        state = load_checkpoint(model, run_dir)
        if state["steps_per_epoch"] != steps_per_epoch:
            raise ConfigError(f"{run_dir / CHECKPOINT}: saved with {state['steps_per_epoch']} steps "
                              f"per epoch, the data now gives {steps_per_epoch}")
        model.step = state["step"]
        _truncate_log(run_dir / LOG, model.step)
        print(f"resumed {run_dir} at step {model.step}")

    grid_split = run.dataset.splits.get("PublicTest", run.dataset.split("Training"))
    faces, labels = data_loader.fixed_faces(grid_split, seed=config.seed)
    last_step = config.epochs * steps_per_epoch
    step_log = StepLog(run_dir, steps_per_epoch, min(last_step, config.max_steps or last_step))
    checkpointer = Checkpointer(run_dir, config.checkpoint_interval,
                                lambda: {"step": model.step, "steps_per_epoch": steps_per_epoch,
                                         "backend": BACKEND, "seed": config.seed})
    checkpointer.saved_step = model.step if run.resume else None
    grid = SampleGrid(run.images_dir, faces, labels, config.sample_interval)
    callbacks = [step_log, checkpointer, grid, RunReport(run, model, step_log, grid)]
    if config.eval_every:
        callbacks.append(_evaluation_callback(run))
    for callback in callbacks:
        callback.set_model(model)
    if model.step == 0:
        grid.write()

    try:
        fit = dict(callbacks=callbacks, shuffle=False, verbose="auto")
        while model.step < step_log.last_step and not model.failure:
            epoch, skip = divmod(model.step, steps_per_epoch)
            whole_epochs = 0 if skip else (step_log.last_step - model.step) // steps_per_epoch
            if whole_epochs:
                stream = functools.partial(epochs_from, experiment, batches, config.seed, epoch)
                run.parallel.fit(model, stream, epochs=epoch + whole_epochs, initial_epoch=epoch,
                                 steps_per_epoch=steps_per_epoch, **fit)
            else:  # a part of an epoch: the rest of a resumed one, or the last one of --max_steps
                steps = min(steps_per_epoch - skip, step_log.last_step - model.step)
                stream = functools.partial(batch_stream, experiment, batches, config.seed, epoch, skip)
                run.parallel.fit(model, stream, epochs=epoch + 1, initial_epoch=epoch,
                                 steps_per_epoch=steps, **fit)
        if model.failure:
            kept = ("no checkpoint was written yet" if checkpointer.saved_step is None else
                    f"the last good checkpoint is {run_dir / CHECKPOINT} (step {checkpointer.saved_step})")
            raise NonFiniteError(f"{model.failure}; training stopped, {kept}")
        checkpointer.save()
        if model.failure:
            raise NonFiniteError(model.failure)
        if model.step % config.sample_interval:
            grid.write()
    finally:
        step_log.close()
    for name, net in model.nets.items():
        if name != "d":
            _save_keras(net, run_dir / f"{name}.keras")
    print(f"done: {model.step} steps; generator in {run_dir}, grids in {run.images_dir}")
    return model


def _save_keras(net, path):
    with atomic.replacing(path) as temporary:
        net.save(temporary)


def _truncate_log(path, step):
    """Drop log lines of steps after the checkpoint (they will be trained again)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        atomic.write_text(path, "".join(line + "\n" for line in kept))


def _evaluation_callback(run):
    try:
        import evaluate
    except ImportError as err:
        raise ConfigError(f"--eval_every needs evaluate.py ({err})") from None
    try:
        return evaluate.EvaluationCallback(str(run.run_dir), run.dataset.split("PublicTest"),
                                           run.config.classifier, run.config.eval_every)
    except (ValueError, OSError) as err:  # evaluate's own one-line errors (FIDError, missing files)
        raise ConfigError(f"--eval_every: {err}") from None


# ---------------------------------------------------------------------------------------------
# Using a trained generator
# ---------------------------------------------------------------------------------------------

class Translator:
    """A trained generator loaded from its run folder (see `load_translator`)."""

    def __init__(self, experiment, config, nets):
        self.experiment, self.config, self.nets = experiment, config, nets
        images = keras.Input((data_loader.IMAGE_SIZE, data_loader.IMAGE_SIZE, 1))
        labels = keras.Input((), dtype="int32")
        self._models = {kind: keras.Model([images, labels], getattr(experiment, kind)(nets, images, labels))
                        for kind in ("translate", "reconstruct")}

    def _predict(self, kind, images, labels, batch_size):
        images = np.asarray(images, np.float32)
        labels = np.broadcast_to(np.asarray(labels, np.int32), (len(images),))
        model = self._models[kind]
        return np.concatenate([ops.convert_to_numpy(model.predict_on_batch(
            [images[i:i + batch_size], labels[i:i + batch_size]]))
            for i in range(0, len(images), batch_size)] or [np.zeros((0, *images.shape[1:]), np.float32)])

    def translate(self, images, target_labels, batch_size=256):
        """float32 faces (N, 48, 48, 1) in [-1, 1] + int targets (N,) or scalar -> np.ndarray."""
        return self._predict("translate", images, target_labels, batch_size)

    def reconstruct(self, images, labels, batch_size=256):
        return self._predict("reconstruct", images, labels, batch_size)


def generator_files(run_dir):
    """The final generator's `.keras` files of a run folder (not the hidden temporaries of a save)."""
    return sorted(path for path in pathlib.Path(run_dir).glob("*.keras") if not path.name.startswith("."))


def load_translator(run_dir):
    """The final generator of a run folder (its `.keras` files), ready to translate faces."""
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a run folder (no config.json)")
    saved = json.loads(config_path.read_text())
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    experiment = importlib.import_module(saved["experiment"])
    fields = {f.name for f in dataclasses.fields(experiment.Config)}
    config = experiment.Config(**{k: v for k, v in saved.items() if k in fields})
    nets = {path.stem: keras.saving.load_model(path, compile=False) for path in generator_files(run_dir)}
    if not nets:
        raise FileNotFoundError(f"{run_dir}: no generator .keras files (the run has not finished)")
    return Translator(experiment, config, nets)
