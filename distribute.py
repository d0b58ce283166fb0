"""Data-parallel training on existing engines, chosen by the trainer's `--distribute` flag.

    --distribute none           one device (the default)
    --distribute mirrored       TensorFlow, one host: every GPU (tf.distribute.MirroredStrategy);
                                without GPUs, every logical CPU device (one, unless the process
                                split the CPU, as tests/test_distribute.py does)
    --distribute multi_worker   TensorFlow, several hosts (tf.distribute.MultiWorkerMirroredStrategy):
                                the cluster comes from TF_CONFIG; run the same command on every host
    --distribute data_parallel  JAX: every local device (keras.distribution.DataParallel)

A step on R replicas gives the weights that the same step gives on one device with the same global
batch (tests/test_distribute.py checks it), which is why a run can resume on another device count:
- Every worker builds the same global batch on the host (seeded order, flips and per-face target
  labels) and replica r takes rows [r*B/R, (r+1)*B/R). The experiments draw their randomness on the
  host, per face, so replicas draw differently without any seed offset, and the draws do not depend
  on R. (Draws inside the step would repeat on every TF replica: the trainer refuses networks with
  random state, and experiments draw in `draw_targets`.)
- TF: a replica's losses are means over its own B/R faces and the replicas' gradients are summed,
  so the trainer differentiates `grad_scale * loss` with grad_scale = 1/R and logs the unscaled
  losses, which Keras averages over the replicas: the global batch's means.
- JAX: the step runs on global arrays sharded over the devices, so a mean already is the global
  batch's mean and grad_scale is 1.
- Only the chief writes; the other workers of a multi-worker run write into a temporary folder
  (see `worker_dirs`).
"""
import atexit
import contextlib
import functools
import os
import pathlib
import shutil
import tempfile

import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras

MODES = ("none", "mirrored", "multi_worker", "data_parallel")
BACKENDS = {"mirrored": "tensorflow", "multi_worker": "tensorflow", "data_parallel": "jax"}


class DistributeError(ValueError):
    """A distribution that cannot run here; the message is one line saying what to do."""


class SingleDevice:
    """No distribution: one device."""

    mode = "none"
    num_replicas = 1
    grad_scale = 1.0
    vector_logs = False
    is_chief = True

    def scope(self):
        """Where the networks and optimizers are built."""
        return contextlib.nullcontext()

    def fit(self, model, make_batches, **fit_kwargs):
        """`model.fit` on `make_batches()`: global batches (tuples of arrays, batch axis first) from
        the fit's first step on. A callable, since Keras may start reading the data more than once."""
        return model.fit(make_batches(), **fit_kwargs)

    def describe(self):
        return "one device"


class TensorFlowStrategy(SingleDevice):
    """MirroredStrategy or MultiWorkerMirroredStrategy; fed one slice of the global batch per replica."""

    def __init__(self, mode, strategy):
        self.mode, self.strategy = mode, strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self.grad_scale = 1.0 / self.num_replicas
        # Keras reduces a step's logs over the workers of a MultiWorkerMirroredStrategy with
        # strategy.reduce("MEAN", logs, axis=0), which fails on scalars: the step returns them with
        # shape (1,) there, and the reduction makes them scalars again.
        self.vector_logs = mode == "multi_worker"
        resolver = strategy.cluster_resolver
        task_type = getattr(resolver, "task_type", None)
        task_id = getattr(resolver, "task_id", None) or 0
        # The chief is task "chief", or worker 0 of a cluster without one (TF's convention).
        self.is_chief = task_type in (None, "chief") or (
            task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs)
        self.task = f"{task_type}:{task_id}" if task_type else None

    def scope(self):
        return self.strategy.scope()

    def fit(self, model, make_batches, **fit_kwargs):
        # The model was built in the strategy's scope, so fit() runs the step on every replica.
        # (A scope around fit() would also make the trainer's inference models run every batch
        # on every replica.)
        return model.fit(self.distributed(make_batches), **fit_kwargs)

    def distributed(self, make_batches):
        """A tf.distribute dataset: each replica's slice of every global batch of `make_batches()`.

        Every iteration starts `make_batches()` afresh, so the dataset may be read more than once
        (Keras' fit, under a strategy, reads a batch to build the model before it trains)."""
        import tensorflow as tf
        first = next(iter(make_batches()))
        per_replica = len(first[0]) // self.num_replicas  # the trainer checks that it divides
        signature = tuple(tf.TensorSpec((per_replica, *x.shape[1:]), tf.as_dtype(x.dtype)) for x in first)

        def dataset(context):
            # One input pipeline per worker; it feeds its local replicas in order.
            local = self.num_replicas // context.num_input_pipelines
            replicas = range(context.input_pipeline_id * local, (context.input_pipeline_id + 1) * local)

            def slices():
                for batch in make_batches():
                    for r in replicas:
                        yield tuple(x[r * per_replica:(r + 1) * per_replica] for x in batch)
            return tf.data.Dataset.from_generator(slices, output_signature=signature)
        return self.strategy.distribute_datasets_from_function(dataset)

    def describe(self):
        where = f", task {self.task}{' (chief)' if self.is_chief else ''}" if self.task else ""
        return f"{type(self.strategy).__name__}, {self.num_replicas} replicas{where}"


class JaxDataParallel(SingleDevice):
    """keras.distribution.DataParallel over every local device."""

    mode = "data_parallel"

    def __init__(self):
        import jax
        self.distribution = keras.distribution.DataParallel()
        self.num_replicas = jax.device_count()
        self.is_chief = jax.process_index() == 0

    def scope(self):
        return self.distribution.scope()

    def fit(self, model, make_batches, **fit_kwargs):
        with self.distribution.scope():
            return model.fit(make_batches(), **fit_kwargs)

    def describe(self):
        return f"DataParallel, {self.num_replicas} devices"


def setup(mode):
    """The distribution `mode` (one of MODES) on this backend; create it before any TF op runs."""
    backend = keras.backend.backend()
    if mode not in MODES:
        raise DistributeError(f"--distribute {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return SingleDevice()
    if BACKENDS[mode] != backend:
        fitting = [m for m, b in BACKENDS.items() if b == backend]
        hint = f"use --distribute {' or '.join(fitting)}" if fitting else "train on one device"
        raise DistributeError(f"--distribute {mode} needs KERAS_BACKEND={BACKENDS[mode]}, this is "
                              f"{backend}; {hint}")
    if mode == "data_parallel":
        return JaxDataParallel()
    if mode == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise DistributeError("--distribute multi_worker needs TF_CONFIG (the cluster and this task); "
                              "see README 'Several hosts'")
    return TensorFlowStrategy(mode, _tf_strategy(mode))


@functools.cache
def _tf_strategy(mode):
    """One strategy per process: two MirroredStrategy objects in one process reuse collective
    keys, and the second one's all-reduce fails with a shape mismatch (TF 2.21)."""
    import tensorflow as tf
    if mode == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()


def worker_dirs(run_dir, images_dir, copy=()):
    """Private run and images folders for a worker that is not the chief, deleted at exit, holding
    copies of the run folder's files named in `copy` (what a resumed run reads)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccyclegan-worker-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    run_dir = pathlib.Path(run_dir)
    private = root / "saved_models" / run_dir.name
    private.mkdir(parents=True)
    for name in copy:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, private / name)
    return private, root / "images" / pathlib.Path(images_dir).name
