"""How an experiment is trained: the GAN step, the callbacks around it, and the run from flags to
the saved generator.

An experiment script (ccyclegan_t1.py, ccyclegan_t2.py) fulfils experiments.Experiment: its Config,
networks, target draws, forward pass and losses. Its `main` reads the flags with train_config (no
Keras yet) and hands them to `main` here. One training step (`GAN.train_step`) runs G forward once,
updates D on real faces vs. those translations, then updates G against the updated D through the
same forward pass; with `--d_g_ratio N` only every Nth step updates G, and the others run a D-only
step compiled apart (G forward with nothing kept for a gradient). How gradients are taken on each
backend is autodiff.py's business. With `--ema_decay`, G's optimizer keeps an exponential moving
average of G's weights (Keras' `use_ema`), which the grids, the evaluation and the saved generator
use. Data parallelism (`--distribute`) comes from distribute.py: the trainer builds the model in
its scope, scales the differentiated losses by its `grad_scale` and feeds `fit` through it. What the run
writes, and how, is run_folder.py's.

Backend-specific code lives in autodiff.py (gradients), distribute.py (tf.distribute, JAX
DataParallel), blocks.Conv2DTranspose (a JAX backward) and here: JAX's stateless `train_step`, a
tf.distribute work-around in `GAN`, and TensorBoard scalars through `tf.summary` in `StepLog`.

Entry points for other code: `main(experiment, config, given)`; `prepare(experiment, config, given)
-> Run` and `train(run) -> GAN` (its two halves); `build_model`, `save_checkpoint`,
`load_checkpoint`; `GAN.translate`/`reconstruct` during training; `EvaluationCallback`, `KeepBest`.
"""
import dataclasses
import functools
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
import autodiff
import data_loader
import distribute
import evaluate
import experiments
import fid
import grids
import run_folder
from data_loader import DataError
from inference import Translator
from train_config import ConfigError

BACKEND = keras.backend.backend()

Batch = namedtuple("Batch", "images labels targets")


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/Inf; the message names the step and the term."""


# ---------------------------------------------------------------------------------------------
# The GAN model: one train step, three backends
# ---------------------------------------------------------------------------------------------

class WarmEMAAdam(keras.optimizers.Adam):
    """Adam whose moving average of the weights warms up: after the n-th update (n from 0) the
    average keeps d = min(ema_momentum, (1 + n) / (10 + n)) of itself (TensorFlow's
    ExponentialMovingAverage with num_updates). Keras' average keeps ema_momentum from the second
    update on, so at 0.999 the random initial weights still made up 0.999^n of it -- 58 % after
    545 updates, and the README's 10-minute first run saved a generator that drew noise while G
    itself already kept the face."""

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        updates = ops.cast(self.iterations, "float32")
        decay = ops.minimum(self.ema_momentum, (1.0 + updates) / (10.0 + updates))
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                average.assign(decay * average + (1.0 - decay) * variable)


class KeepWeightsOptimizer(keras.optimizers.MultiOptimizer):
    """A MultiOptimizer after whose fit() G keeps its own weights: Keras would overwrite them with
    their moving average at the end of every fit(), and the trainer fits a few epochs at a time. The
    average serves where it is meant to (GAN.generator)."""

    def finalize_variable_values(self, var_list):
        pass


class GAN(keras.Model):
    """G and D of one experiment, trained by `fit`; `translate` serves evaluation and grids."""

    def __init__(self, experiment, config, nets, run_dir=None, grad_scale=1.0, vector_logs=False):
        super().__init__(name="gan")
        self.experiment, self.config, self.run_dir = experiment, config, run_dir
        # Data parallelism (distribute.py): TF sums the replicas' gradients, so each replica
        # differentiates grad_scale x its loss; multi-worker TF wants logs of shape (1,).
        self.grad_scale, self.vector_logs = grad_scale, vector_logs
        self.nets = nets
        self.g_nets = {name: net for name, net in nets.items() if name != experiments.DISCRIMINATOR}
        self.discriminator = nets[experiments.DISCRIMINATOR]
        for net in nets.values():
            if net.non_trainable_variables:
                raise ValueError(f"{net.name}: the trainer needs networks without non-trainable "
                                 "state (no BatchNormalization or Dropout)")
        self.g_variables = [v for net in self.g_nets.values() for v in net.trainable_variables]
        self.d_variables = list(self.discriminator.trainable_variables)
        # The EMA: after G's n-th update (n from 0), average = d * average + (1 - d) * weight with
        # d = min(decay, (1 + n) / (10 + n)) (WarmEMAAdam). It lives in the optimizer's variables, so
        # checkpoints hold it.
        self.g_optimizer = self._adam("g_adam", use_ema=config.ema_decay > 0,
                                      ema_momentum=config.ema_decay or 0.99)
        self.d_optimizer = self._adam("d_adam")
        d_ids = {id(v) for v in self.d_variables}
        # One optimizer object for Keras (JAX keeps its variables in the train state); each
        # update still goes through its own Adam.
        self.compile(optimizer=KeepWeightsOptimizer(
            lambda v: self.d_optimizer if id(v) in d_ids else self.g_optimizer))
        self.optimizer.build(self.g_variables + self.d_variables)
        self.restart_average()  # grids before the first G update show G, not zeros
        self.built = True
        self._inference = None
        self.step = 0          # global step, counted on the host by the train function
        self.failure = None    # message of a non-finite loss/weight, set by the callbacks

    def _adam(self, name, **ema):
        c = self.config
        return WarmEMAAdam(c.adam_lr, beta_1=c.adam_beta_1, beta_2=c.adam_beta_2, name=name, **ema)

    def restart_average(self):
        """G's moving average set to G's weights (none without EMA). Copies: on JAX, variables that
        shared an array would lose it when fit() donates one of them."""
        for average, variable in zip(self._averages(), self.g_variables):
            average.assign(ops.copy(variable))

    def updates_g(self, step):
        """Whether step `step` (0-based) updates G: every d_g_ratio-th one, from the first after
        --d_warmup_steps on."""
        warmup = self.config.d_warmup_steps
        return step >= warmup and (step - warmup) % self.config.d_g_ratio == 0

    def _gan_step(self, batch, autodiff, updates_g):
        exp, nets, config = self.experiment, self.nets, self.config
        # 1. translate the batch; the forward pass is kept for G's update in step 3 if there is one
        if updates_g:
            generated, g_backward = autodiff.forward(self.g_variables, lambda: exp.generate(nets, batch, config))
        else:
            generated = autodiff.constant(lambda: exp.generate(nets, batch, config))
        # 2. update D on real faces vs. the translations (held constant)
        constant = keras.tree.map_structure(ops.stop_gradient, generated)
        (_, d_terms), d_grads = autodiff.value_and_grad(
            self.d_variables, self._scaled(lambda: exp.discriminator_loss(nets, batch, constant, config)))
        autodiff.apply(self.d_optimizer, d_grads, self.d_variables)
        logs = {f"D/{k}": v for k, v in d_terms.items()}
        # 3. update G against the updated D (and G's moving average)
        if updates_g:
            (_, g_terms), g_grads = g_backward(
                self._scaled(lambda gen: exp.generator_loss(nets, batch, gen, config)))
            autodiff.apply(self.g_optimizer, g_grads, self.g_variables)
            logs.update({f"G/{k}": v for k, v in g_terms.items()})
        return {k: ops.reshape(v, (1,)) for k, v in logs.items()} if self.vector_logs else logs

    def _scaled(self, loss_fn):
        """loss_fn returning (grad_scale x total, terms + the unscaled total): what is
        differentiated vs. what is logged."""
        def scaled(*args):
            total, terms = loss_fn(*args)
            return total * self.grad_scale, {**terms, "total": total}
        return scaled

    if BACKEND == "jax":
        def train_step(self, state, data, updates_g=True):
            trainable, non_trainable, optimizer_values, metric_values = state
            groups = (self.trainable_variables, self.non_trainable_variables,
                      self.optimizer.variables, self.metrics_variables)
            values = (*trainable, *non_trainable, *optimizer_values, *metric_values)
            variables = [v for group in groups for v in group]
            with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                logs = self._gan_step(Batch(*data), autodiff.for_backend(scope, variables), updates_g)
            return logs, tuple([scope.get_current_value(v) for v in group] for group in groups)
    else:
        def train_step(self, data, updates_g=True):
            return self._gan_step(Batch(*data), autodiff.for_backend(), updates_g)

    def make_train_function(self, force=False):
        """Keras' train function, made twice -- the full step and the D-only one -- and chosen on
        the host before every step by `updates_g(self.step)`; it counts the steps."""
        if self.train_function is not None and not force:
            return self.train_function
        steps = {}
        for updates_g in (True, False):
            # Keras compiles the `train_step` it finds on the model: TF and JAX when the function is
            # made (a function object of its own per kind, as JAX's trace cache is keyed by the
            # function), torch at every call (so the dispatcher below sets it again).
            self.train_step = functools.partial(type(self).train_step, self, updates_g=updates_g)
            super().make_train_function(force=True)
            steps[updates_g] = self.train_step, self.train_function

        def train_function(*args):
            self.train_step, function = steps[self.updates_g(self.step)]
            logs = function(*args)
            self.step += 1
            return logs
        self.train_function = train_function
        return train_function

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

    def generator(self):
        """G's networks {name: net} as grids, evaluations and the saved generator use them: copies
        holding the moving average of G's weights (brought up to date here), or G's own without EMA."""
        return self._translator().nets

    def _averages(self):
        """The moving averages of g_variables, in their order ([] without EMA); read as Keras' own
        SwapEMAWeights callback reads them."""
        return self.g_optimizer._model_variables_moving_average if self.g_optimizer.use_ema else []

    def _translator(self):
        if hasattr(self, "jax_state_sync"):
            self.jax_state_sync()  # JAX fit() keeps the fresh weights outside the variables
        if self._inference is None:
            nets = ({name: keras.models.clone_model(net) for name, net in self.g_nets.items()}
                    if self.g_optimizer.use_ema else self.g_nets)
            self._inference = Translator(self.experiment, self.config, nets)
        if self.g_optimizer.use_ema:
            averages = iter(self._averages())
            for net in self._inference.nets.values():
                for variable in net.trainable_variables:
                    variable.assign(ops.copy(next(averages)))
        return self._inference


# ---------------------------------------------------------------------------------------------
# Checkpoints: one .npz with G, D, both optimizers and the step (run_folder writes it)
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
    run_folder.write_checkpoint(run_dir, state, arrays)


def load_checkpoint(model, run_dir):
    """Restore G, D and both optimizers into `model`; returns the saved state dict."""
    state, saved = run_folder.read_checkpoint(run_dir)
    expected = _weights(model)
    mismatched = [k for k in expected if k not in saved or saved[k].shape != expected[k].shape]
    if mismatched or len(saved) != len(expected):
        raise ConfigError(f"{pathlib.Path(run_dir) / run_folder.CHECKPOINT}: does not match these networks "
                          f"(first difference: {(mismatched or ['extra arrays'])[0]})")
    for name, net in model.nets.items():
        net.set_weights([saved[f"net/{name}/{i}"] for i in range(len(net.weights))])
    for name, opt in (("g", model.g_optimizer), ("d", model.d_optimizer)):
        for i, v in enumerate(opt.variables):
            v.assign(saved[f"opt/{name}/{i}"])
    return state


def init_generator(model, folder):
    """G's weights, and its moving average, from a saved generator folder of the same experiment and
    network shape (--init_generator); D and both optimizers keep their fresh start."""
    translator = run_folder.load_translator(folder)
    saved_by, training = experiments.name_of(translator.experiment), experiments.name_of(model.experiment)
    if saved_by != training:
        raise ConfigError(f"{run_folder.config_path(folder)}: a generator of {saved_by}; --init_generator "
                          f"needs one of {training}")
    for name, net in model.g_nets.items():
        saved = translator.nets.get(name)
        if saved is None or [w.shape for w in saved.weights] != [w.shape for w in net.weights]:
            raise ConfigError(f"{run_folder.generator_path(folder, name)}: does not match this run's {name} "
                              "(the flags that shape G, such as --base_filters, must be the generator's)")
        net.set_weights(saved.get_weights())
    model.restart_average()


# ---------------------------------------------------------------------------------------------
# Callbacks: per-step log + NaN guard, checkpoints, sample grids, evaluation
# ---------------------------------------------------------------------------------------------

class StepLog(keras.callbacks.Callback):
    """Logs every loss term of a step (JSONL + TensorBoard); stops at the last step or on a
    non-finite loss."""

    def __init__(self, run_dir, steps_per_epoch, last_step):
        super().__init__()
        self.steps_per_epoch, self.last_step = steps_per_epoch, last_step
        self.file = run_folder.open_train_log(run_dir)
        self.started = time.time()
        try:
            import tensorflow as tf
            self.tf = tf
            self.writer = tf.summary.create_file_writer(str(pathlib.Path(run_dir) / run_folder.TENSORBOARD))
        except ImportError:
            print("note: tensorflow is not installed; TensorBoard scalars are off", file=sys.stderr)
            self.writer = None

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
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
        return grids.write_sample_grid(pathlib.Path(self.images_dir) / f"step_{self.model.step:07d}.png",
                                       self.model, self.faces, self.labels, title=f"step {self.model.step}")

    def on_train_batch_end(self, batch, logs=None):
        if self.model.step % self.interval == 0 and not self.model.failure:
            self.write()

class EvaluationCallback(keras.callbacks.Callback):
    """evaluate.Evaluator on `self.model.translate` every `every_epochs` epochs, appended to the run's
    metrics.jsonl.

    Also writes logs["fid"], logs["kid"], logs["expression_accuracy"] (the means) and
    logs["min_relative_accuracy"], so later callbacks (a KerasTuner objective, TensorBoard) can read them.
    """

    def __init__(self, run_dir, test_split, classifier_path=None, every_epochs=1, max_per_class=None,
                 stats_dir=None):
        super().__init__()
        if every_epochs < 1:
            raise ValueError(f"every_epochs must be at least 1, got {every_epochs}")
        self.run_dir, self.every_epochs = pathlib.Path(run_dir), every_epochs
        self.evaluator = evaluate.Evaluator(test_split, fid.ClassifierExtractor.load(classifier_path),
                                            max_per_class, stats_dir)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        start = time.time()
        record = self.evaluator(self.model.translate)
        step = getattr(self.model, "step", None)  # the trainer's global step (counted across resumes)
        if step is None and getattr(self.model, "optimizer", None) is not None:
            step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        checkpoint = self.run_dir / run_folder.CHECKPOINT
        record = evaluate.stamped(record, start, step=step, epoch=epoch + 1,
                                  checkpoint=str(checkpoint) if checkpoint.exists() else None)
        run_folder.append_metrics(self.run_dir, record)
        if logs is not None:  # no "fid" when every class is too small for it (see evaluate.py)
            means = {"fid": record["mean"]["fid"], "kid": record["mean"]["kid"],
                     "expression_accuracy": record["mean"]["accuracy"],
                     "min_relative_accuracy": record["min"]["relative_accuracy"]}
            logs.update({key: value for key, value in means.items() if value is not None})


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, except that an epoch stopped early (--max_minutes) ends on the steps it
    ran, not on the epoch's full count (Keras' would print 448/448 after 97 steps)."""

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.progbar is not None:
            self.target = self.progbar.target = self.seen
        super().on_epoch_end(epoch, logs)


class KeepBest(keras.callbacks.Callback):
    """After each evaluation (an EvaluationCallback placed before this one), keeps the generator with
    the best score so far in best/ and its step and scores in best/best.json. Best = the highest
    minimum relative expression accuracy over the target emotions (every emotion must change), ties
    going to the lower KID; without accuracies, the lower KID."""

    SCORES = ("min_relative_accuracy", "kid")

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.best = run_folder.read_best(run_dir)  # a resumed run competes with its earlier best

    @staticmethod
    def rank(scores):
        """Sort key of an evaluation's scores: lower is better."""
        accuracy = scores.get("min_relative_accuracy")
        return -accuracy if accuracy is not None else math.inf, scores.get("kid", math.inf)

    def on_epoch_end(self, epoch, logs=None):
        scores = {key: float(logs[key]) for key in self.SCORES if (logs or {}).get(key) is not None}
        if not scores:  # no evaluation at this epoch
            return
        if self.best is None or self.rank(scores) < self.rank(self.best["scores"]):
            self.best = {"step": self.model.step, "epoch": epoch + 1, "scores": scores}
            run_folder.write_best(self.run_dir, self.model.generator(), self.best)
            print(f"best so far: step {self.model.step}, {json.dumps(scores)}; generator in "
                  f"{self.run_dir / run_folder.BEST_GENERATOR}")


class RunReport(keras.callbacks.Callback):
    """What a run costs, said while it runs: where every output goes (at once), the whole run's
    duration estimated from the first measured steps, a sample grid within the first minutes, and
    the --max_minutes bound (a clean stop: the trainer then checkpoints and saves the generator)."""

    MEASURED_STEPS = 5        # at least this many steps timed, a whole number of --d_g_ratio cycles,
    #                           after the first step of each kind (G + D, D only), which also compile
    EARLY_GRID_SECONDS = 90   # a grid this soon, however long --sample_interval is

    def __init__(self, run, model, step_log, grid):
        super().__init__()
        self.run, self.step_log, self.grid = run, step_log, grid
        self.started, self.first_step = time.time(), model.step
        self.timed_from = self.early_grid = None
        config = run.config
        # Time from the step after which each kind of step the run has after --d_warmup_steps
        # (GAN.updates_g) has run once.
        after_warmup = max(model.step, config.d_warmup_steps)
        kinds = {model.updates_g(after_warmup + k) for k in range(config.d_g_ratio)}
        self.warmup_steps = after_warmup - model.step + 1
        while not kinds <= {model.updates_g(model.step + k) for k in range(self.warmup_steps)}:
            self.warmup_steps += 1
        self.measured_steps = config.d_g_ratio * math.ceil(self.MEASURED_STEPS / config.d_g_ratio)
        generator = " + ".join(f"{name}{run_folder.GENERATOR_SUFFIX}" for name in model.g_nets)
        others = ([f"G itself in {run_folder.RAW_GENERATOR}/"] if config.ema_decay else []) + (
            [f"the best evaluation's in {run_folder.BEST_GENERATOR}/"] if config.eval_every else [])
        print(f"outputs of this run:\n"
              f"  {run.run_dir}/{run_folder.CONFIG}, {run_folder.TRAIN_LOG} (losses per step), {run_folder.TENSORBOARD}/\n"
              f"  {run.run_dir}/{run_folder.CHECKPOINT}   every {config.checkpoint_interval} steps, each epoch "
              f"end and at the end (--resume continues from it)\n"
              f"  {run.run_dir}/{generator}   the generator"
              f"{' (the moving average of G)' if config.ema_decay else ''}, at the end"
              f"{''.join('; ' + other for other in others)}\n"
              f"  {run.images_dir}/step_*.png   sample grids: at step 0, after about "
              f"{self.EARLY_GRID_SECONDS} s, then every {config.sample_interval} steps", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        model, config, now = self.model, self.run.config, time.time()
        if model.step == self.first_step + self.warmup_steps:
            self.timed_from = (model.step, now)
        elif self.timed_from and model.step == self.timed_from[0] + self.measured_steps:
            self._print_estimate((now - self.timed_from[1]) / self.measured_steps, now)
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

def main(experiment, config, given):
    """The experiment scripts' entry point once their flags are read (train_config.train_from_command_line):
    prepare and train. Exit 2 on bad input or a place that cannot be written, 1 on NaN/Inf."""
    try:
        train(prepare(experiment, config, given))
    except (ConfigError, DataError, run_folder.RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only or full disk, a file where a folder should be
        print(f"error: {err.filename or config.output_dir}: cannot write ({err.strerror or err}); what the "
              "run folder holds is kept whole", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


# notes: a line for config.json's "notes" (compare_runs shows it), e.g. a sweep trial's hyperparameters
Run = namedtuple("Run", "experiment config run_dir images_dir dataset resume parallel notes", defaults=(None,))


def experiment_id(experiment):
    return experiments.name_of(experiment).removeprefix("ccyclegan_")


def run_dirs(config, experiment):
    """(saved_models/<run>, images/<run>); the run's name defaults to the experiment's id."""
    return run_folder.run_dirs(config.output_dir, config.run_name or experiment_id(experiment)
                               + ("_demo" if config.demo else ""))


def _resumed_config(experiment, config, given, run_dir):
    """The run's saved config, with the flags that may change on resume taken from the CLI."""
    if not (run_dir / run_folder.CHECKPOINT).is_file():
        what = ("the run stopped before its first one: start it afresh (the same command without --resume)"
                if run_dir.is_dir() else "check --run_name and --output_dir")
        raise ConfigError(f"{run_dir / run_folder.CHECKPOINT}: no checkpoint to resume from; {what}")
    saved = run_folder.read_config(run_dir)
    config_path = run_dir / run_folder.CONFIG
    if saved.get("experiment") != experiments.name_of(experiment):
        raise ConfigError(f"{config_path}: a run of {saved.get('experiment')!r}, not of "
                          f"{experiments.name_of(experiment)!r}; it cannot be resumed by this script")
    fields = {f.name for f in dataclasses.fields(experiment.Config)}
    resumable = experiment.Config.resumable_fields()
    values = experiment.Config.saved_values(saved)
    for name in sorted(given - resumable):
        if name in fields and getattr(config, name) != values.get(name):
            raise ConfigError(f"--{name} {getattr(config, name)!r} differs from the run's "
                              f"{values.get(name)!r} ({config_path}); it cannot change on --resume")
    try:
        experiment.Config(**values).check_fields()
    except (TypeError, ConfigError) as err:
        raise ConfigError(f"{config_path}: not a config of this experiment ({err})") from None
    values.update({k: getattr(config, k) for k in given & resumable & fields})
    return experiment.Config(**values)


def prepare(experiment, config, given):
    """Check the config and find the data; raises ConfigError/DataError. Writes nothing into the run
    folder: train() does, once its own checks have passed.

    `config` and `given` come from train_config.parse_config (the flags named on the command line)."""
    experiments.check(experiment)
    run_dir, images_dir = run_dirs(config, experiment)
    if config.resume:
        config = _resumed_config(experiment, config, given, run_dir)
    try:
        parallel = distribute.setup(config.distribute)  # before any TensorFlow op runs
    except distribute.DistributeError as err:
        raise ConfigError(str(err)) from None
    if not config.resume and parallel.is_chief and run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / run_folder.CHECKPOINT).exists() or run_folder.generator_files(run_dir):
            raise ConfigError(f"{run_dir}: run folder exists; pass --resume to continue it or choose "
                              "another --run_name")
        print(f"note: {run_dir} holds no checkpoint (an earlier start stopped before its first one); "
              "starting afresh in it", flush=True)
    config.check()
    if config.batch_size % parallel.num_replicas:
        raise ConfigError(f"--batch_size {config.batch_size} does not split evenly over "
                          f"{parallel.num_replicas} replicas")
    if config.demo and not config.data:
        config.data = str(pathlib.Path(config.output_dir) / "datasets" / "synthetic_faces.csv")
        if not pathlib.Path(config.data).exists():
            import synthetic_faces
            synthetic_faces.write_synthetic_csv(config.data, seed=config.seed, **config.DEMO_FACES)
    dataset = data_loader.load_fer2013(config.data or None)
    train_split = dataset.split("Training")
    if len(train_split) < config.batch_size:
        raise ConfigError(f"{dataset.source}: {len(train_split)} Training faces, fewer than one "
                          f"batch of {config.batch_size}")
    if not parallel.is_chief:  # only the chief writes into the run folder
        run_dir, images_dir = distribute.worker_dirs(
            run_dir, images_dir, copy=(run_folder.CONFIG, run_folder.CHECKPOINT, run_folder.TRAIN_LOG))
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


def epochs_from(experiment, batches, seed, first, count):
    """The batches of `count` epochs from `first` on."""
    for epoch in range(first, first + count):
        yield from batch_stream(experiment, batches, seed, epoch, 0)


def _first(count, make_batches, *args):
    """The first `count` batches of make_batches(*args)."""
    yield from itertools.islice(make_batches(*args), count)


def train(run):
    """Fit epoch by epoch (a resumed run re-enters mid-epoch), then save the generator. Writes into
    the run folder only after every check (checkpoint, data, evaluation set-up) has passed."""
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
        if state.get("steps_per_epoch") != steps_per_epoch:
            raise ConfigError(f"{run_dir / run_folder.CHECKPOINT}: saved with {state.get('steps_per_epoch')} steps "
                              f"per epoch, the data now gives {steps_per_epoch}")
        model.step = state["step"]
    elif config.init_generator:
        init_generator(model, config.init_generator)

    grid_split = run.dataset.splits.get("PublicTest", run.dataset.split("Training"))
    faces, labels = data_loader.fixed_faces(grid_split, seed=config.seed)
    evaluation = [_evaluation_callback(run), KeepBest(run_dir)] if config.eval_every else []
    _open_run_folder(run, model.step)
    if run.resume:
        print(f"resumed {run_dir} at step {model.step}")
    last_step = config.epochs * steps_per_epoch
    step_log = StepLog(run_dir, steps_per_epoch, min(last_step, config.max_steps or last_step))
    checkpointer = Checkpointer(run_dir, config.checkpoint_interval,
                                lambda: {"step": model.step, "steps_per_epoch": steps_per_epoch,
                                         "backend": BACKEND, "seed": config.seed})
    checkpointer.saved_step = model.step if run.resume else None
    grid = SampleGrid(run.images_dir, faces, labels, config.sample_interval)
    callbacks = [ProgressBar(), step_log, checkpointer, grid, RunReport(run, model, step_log, grid), *evaluation]
    for callback in callbacks:
        callback.set_model(model)
    if model.step == 0:
        grid.write()

    try:
        # Each fit gets exactly the batches it trains on: a generator left unfinished is finalized
        # at exit, after Python's, and TensorFlow warns "GeneratorDataset iterator ... FAILED_PRECONDITION".
        # Into a file or pipe, one line per epoch instead of a progress bar redrawn at every step.
        fit = dict(callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
        while model.step < step_log.last_step and not model.failure:
            epoch, skip = divmod(model.step, steps_per_epoch)
            whole_epochs = 0 if skip else (step_log.last_step - model.step) // steps_per_epoch
            if whole_epochs:
                stream = functools.partial(epochs_from, experiment, batches, config.seed, epoch, whole_epochs)
                run.parallel.fit(model, stream, epochs=epoch + whole_epochs, initial_epoch=epoch,
                                 steps_per_epoch=steps_per_epoch, **fit)
            else:  # a part of an epoch: the rest of a resumed one, or the last one of --max_steps
                steps = min(steps_per_epoch - skip, step_log.last_step - model.step)
                stream = functools.partial(_first, steps, batch_stream, experiment, batches, config.seed,
                                           epoch, skip)
                run.parallel.fit(model, stream, epochs=epoch + 1, initial_epoch=epoch,
                                 steps_per_epoch=steps, **fit)
        if model.failure:
            kept = ("no checkpoint was written yet" if checkpointer.saved_step is None else
                    f"the last good checkpoint is {run_dir / run_folder.CHECKPOINT} "
                    f"(step {checkpointer.saved_step})")
            raise NonFiniteError(f"{model.failure}; training stopped, {kept}")
        checkpointer.save()
        if model.failure:
            raise NonFiniteError(model.failure)
        if model.step % config.sample_interval:
            grid.write()
    finally:
        step_log.close()
    run_folder.write_generator(run_dir, model.generator())
    if model.g_optimizer.use_ema:
        run_folder.write_generator(run_dir, model.g_nets, run_folder.RAW_GENERATOR)
    best = run_folder.read_best(run_dir)
    print(f"done: {model.step} steps; generator in {run_dir}"
          + (f", the best one (step {best['step']}) in {run_dir / run_folder.BEST_GENERATOR}" if best else "")
          + f", grids in {run.images_dir}")
    return model


def _open_run_folder(run, step):
    """Make the run's folders, clear what a killed process left (temporaries; log lines after the
    checkpoint's `step`, or all of them on a fresh start) and write config.json."""
    for folder in (run.images_dir, run.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temporaries(folder)
    run_folder.truncate_train_log(run.run_dir, step)
    run_folder.write_config(run.run_dir, {**dataclasses.asdict(run.config),
                                          "experiment": experiments.name_of(run.experiment),
                                          "backend": BACKEND, "data_source": run.dataset.source,
                                          **({"notes": run.notes} if run.notes else {})})


def _evaluation_callback(run):
    try:
        return EvaluationCallback(str(run.run_dir), run.dataset.split("PublicTest"), run.config.classifier,
                                  run.config.eval_every)
    except (ValueError, OSError) as err:  # evaluate's own one-line errors (FIDError, missing files)
        raise ConfigError(f"--eval_every: {err}") from None
