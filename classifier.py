"""FER2013 expression classifier: the judge of expression accuracy and FID's offline extractor.

A VGG-style CNN: `num_blocks` blocks of two 3x3 conv + BatchNorm + ReLU, max-pool and dropout,
channels doubling from `width`; then the flattened maps, a Dense layer named "features" (the
penultimate layer that fid.py reads) and a 7-way softmax. Flips, small rotations, shifts and zooms
are keras preprocessing layers inside the model, so they act only while training. Trained with Adam
(linear warm-up, cosine decay), label smoothing and class weights (Disgust is 1.5 % of Training).
The saved judge averages its verdict and features over each face and its mirror image (flip
test-time averaging, `with_flip_averaging`), inside the model, so that the PublicTest accuracy it
reports is what evaluate.py, fid.py and the trainer's evaluations get.

    .venv/bin/python classifier.py --data datasets/fer2013.csv

trains on the Training split (a seeded, stratified 10 % of it picks the best epoch), reports
PublicTest accuracy once at the end, and writes `classifier.keras`, `metrics.json` and
`training_log.csv` atomically into --out (default saved_models/new_classifier; replacing the
committed judge in saved_models/expression_classifier takes `--out ... --overwrite`). Stopped
(`--max_minutes`, a kill), the same command continues from the last finished epoch. The same code
with a tiny width is the synthetic-faces judge.
"""
import argparse
import datetime
import json
import math
import pathlib
import shutil
import sys
import time

import numpy as np

import atomic
from data_loader import (EMOTIONS, IMAGE_SIZE, NUM_CLASSES, REPO_ROOT, DataError, load_fer2013,
                         to_float)
from lazy_import import lazy_import

# Keras loads on first use, after the flags are read: --help and flag errors answer first.
keras, layers = lazy_import("keras"), lazy_import("keras.layers")

MODEL_FILE = "classifier.keras"
METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.csv"
DEFAULT_DIR = REPO_ROOT / "saved_models" / "expression_classifier"  # the committed judge
NEW_DIR = REPO_ROOT / "saved_models" / "new_classifier"  # where training writes unless told


def build_classifier(width=32, num_blocks=4, dense_units=256, dropout=0.1, augment=True,
                     head="flatten"):
    """The classifier: input (48, 48, 1) float in [-1, 1], softmax over the 7 emotions.

    `head` "flatten" keeps where a feature sits (mouth, brows: what tells expressions apart on
    real faces); "average" (global average pooling) is the small, position-free head that the
    synthetic-faces judge uses.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = inputs
    if augment:  # what the field uses on FER2013; these layers act only while training
        x = layers.RandomFlip("horizontal", name="flip")(x)
        x = layers.RandomRotation(0.03, fill_mode="nearest", name="rotate")(x)  # about 10 degrees
        x = layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", name="shift")(x)
        x = layers.RandomZoom(0.1, fill_mode="nearest", name="zoom")(x)
    for block in range(num_blocks):
        channels = width * 2 ** block
        for conv in range(2):
            x = layers.Conv2D(channels, 3, padding="same", use_bias=False,
                              name=f"block{block + 1}_conv{conv + 1}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"block{block + 1}_bn{conv + 1}")(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(name=f"block{block + 1}_pool")(x)
        x = layers.Dropout(dropout)(x)
    if head == "flatten":
        x = layers.Flatten()(x)
    elif head == "average":
        x = layers.GlobalAveragePooling2D()(x)
    else:
        raise ValueError(f"head must be 'flatten' or 'average', not {head!r}")
    x = layers.Dense(dense_units, activation="relu", name="features")(x)
    x = layers.Dropout(2 * dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="expression_classifier")


def with_flip_averaging(model):
    """`model` reading each face together with its mirror image: its "features" become the mean
    of both views' features, and the softmax head reads that mean (the head is linear up to the
    softmax, so this averages both views' logits). Test-time flip averaging, as one model that
    saves and loads whole, whose "features" layer fid.py reads as before."""
    import blocks  # registers Mirror

    features = model.get_layer("features")
    single_view = keras.Model(model.input, features.output, name="single_view")
    face = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = layers.Average(name="features")([single_view(face), single_view(blocks.Mirror(name="mirror")(face))])
    for layer in model.layers[model.layers.index(features) + 1:]:  # dropout, the softmax layer
        x = layer(x)
    return keras.Model(face, x, name=f"{model.name}_flip_averaged")


def class_weights(labels, power):
    """{class: (count_max / count)^power}, scaled to mean 1 over the faces; power 0 = unweighted."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    present = counts > 0
    weights = np.ones(NUM_CLASSES)
    weights[present] = (counts[present].max() / counts[present]) ** power
    weights /= np.sum(weights * counts) / counts.sum()
    return {c: float(weights[c]) for c in range(NUM_CLASSES)}


def train_classifier(train_images, train_labels, val_images=None, val_labels=None, *,
                     model=None, epochs=30, batch_size=64, learning_rate=1e-3, warmup_epochs=1,
                     label_smoothing=0.1, class_weight_power=0.5, seed=0, checkpoint_dir=None,
                     max_minutes=None, extra_callbacks=(), verbose=1):
    """Fit a classifier on uint8 faces (N, 48, 48) with labels 0..6; returns (model, history).

    Adam with a linear warm-up and a cosine decay to 0 over `epochs`, label smoothing, and class
    weights (Disgust is 1.5 % of Training). With `checkpoint_dir`, training is resumable: Keras'
    BackupAndRestore keeps the last finished epoch there (a rerun continues from it), and every
    epoch's model is kept as `epochNNN-valACC.keras`; with validation faces the epoch with the best
    validation accuracy is the one returned. `max_minutes` ends training after the first epoch that
    finishes past that wall time (a rerun continues).
    """
    keras.utils.set_random_seed(seed)
    model = model or build_classifier()
    steps_per_epoch = math.ceil(len(train_images) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, (epochs - warmup_epochs) * steps_per_epoch),
        warmup_target=learning_rate, warmup_steps=warmup_epochs * steps_per_epoch)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    validation = None
    if val_images is not None:
        validation = (to_float(val_images), _one_hot(val_labels))
    callbacks = list(extra_callbacks)
    if checkpoint_dir is not None:
        checkpoint_dir = pathlib.Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        # Kept when fit ends (a --max_minutes stop included); main() removes it once the run is done.
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup"),
                                                          delete_checkpoint=False))
        if validation is not None:  # each new best epoch's weights, named by its validation accuracy
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(checkpoint_dir / "epoch{epoch:03d}-val{val_accuracy:.4f}.weights.h5"),
                monitor="val_accuracy", mode="max", save_best_only=True, save_weights_only=True,
                initial_value_threshold=_best_epoch(checkpoint_dir)[1]))
    if max_minutes is not None:
        deadline = time.time() + 60.0 * max_minutes

        def stop_after_deadline(epoch, logs):
            if time.time() > deadline:
                print(f"Epoch {epoch + 1}: past the {max_minutes}-minute limit, stopping")
                model.stop_training = True

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=stop_after_deadline))
    history = model.fit(to_float(train_images), _one_hot(train_labels),
                        validation_data=validation, epochs=epochs, batch_size=batch_size,
                        class_weight=class_weights(np.asarray(train_labels), class_weight_power),
                        shuffle=True, callbacks=callbacks, verbose=verbose)
    best_file, _ = _best_epoch(checkpoint_dir) if checkpoint_dir is not None else (None, None)
    if validation is not None and best_file is not None:
        model.load_weights(best_file)
        if verbose:
            print(f"best validation epoch: {best_file.name}")
    return model, history


def _best_epoch(checkpoint_dir):
    """(file, validation accuracy) of the best epoch saved so far; (None, None) before the first."""
    saved = {path: float(path.name.split("-val")[1].removesuffix(".weights.h5"))
             for path in pathlib.Path(checkpoint_dir).glob("epoch*-val*.weights.h5")}
    best = max(saved, key=saved.get, default=None)
    return best, saved.get(best)


def _one_hot(labels):
    return np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(labels, np.int64)]


def load_classifier(path=DEFAULT_DIR):
    """Load a saved classifier from its `.keras` file or the folder holding `classifier.keras`."""
    path = pathlib.Path(path)
    import blocks  # noqa: F401  (registers the Mirror layer of flip-averaged judges)

    model_file = path / MODEL_FILE if path.suffix != ".keras" else path
    if not model_file.is_file():
        raise FileNotFoundError(
            f"{model_file}: no expression classifier here; train one with "
            f"`python classifier.py --data datasets/fer2013.csv --out {model_file.parent}`")
    try:
        return keras.saving.load_model(model_file)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors, ... by cause
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{model_file}: not a loadable expression classifier ({reason})") from None


def predict_labels(model, x_float, batch_size=256):
    """Predicted emotions (int64, N) for faces float (N, 48, 48[, 1]) in [-1, 1]."""
    x_float = np.asarray(x_float, np.float32)
    if x_float.ndim == 3:
        x_float = x_float[..., None]
    if x_float.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise ValueError(f"predict_labels expects faces of shape (N, 48, 48[, 1]), "
                         f"got {x_float.shape}")
    return np.argmax(model.predict(x_float, batch_size=batch_size, verbose=0), axis=-1)


def per_class_accuracy(predicted, labels):
    """{emotion name: accuracy} over the classes present in `labels`."""
    return {EMOTIONS[c]: float(np.mean(predicted[labels == c] == c))
            for c in range(NUM_CLASSES) if np.any(labels == c)}


def save_classifier(model, path):
    """Save `model` without its optimizer state (a third of the size) to `path` (.keras), atomically."""
    path = pathlib.Path(path)
    inference = keras.Model.from_config(model.get_config())  # uncompiled, unlike clone_model
    inference.set_weights(model.get_weights())
    with atomic.replacing(path) as temporary:
        inference.save(temporary)
    return path


def _save_atomically(model, metrics, out_dir):
    save_classifier(model, out_dir / MODEL_FILE)
    atomic.write_text(out_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")


def _validation_split(labels, fraction, seed):
    """Seeded, stratified (train_idx, val_idx) over the Training faces."""
    rng = np.random.default_rng(seed)
    val = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:int(round(fraction * np.sum(labels == c)))]
        for c in range(NUM_CLASSES)])
    return np.setdiff1d(np.arange(len(labels)), val), np.sort(val)


def _epoch_seconds():
    """A callback that adds each epoch's wall time to its logs (so the CSV log sums to the run's time)."""
    start = {}

    def on_epoch_end(epoch, logs):
        logs["seconds"] = time.time() - start[epoch]

    return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: start.__setitem__(epoch, time.time()),
                                          on_epoch_end=on_epoch_end)


# Checked before any data is read: (flag, test, what it must be).
_LIMITS = [("epochs", lambda v: v >= 1, "at least 1"), ("batch_size", lambda v: v >= 1, "at least 1"),
           ("learning_rate", lambda v: v > 0, "above 0"), ("warmup_epochs", lambda v: v >= 0, "0 or more"),
           ("val_fraction", lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
           ("width", lambda v: v >= 1, "at least 1"), ("num_blocks", lambda v: 1 <= v <= 5, "1 to 5"),
           ("dense_units", lambda v: v >= 1, "at least 1"),
           ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"), ("dropout", lambda v: 0 <= v < 0.5, "in [0, 0.5)"),
           ("class_weight_power", lambda v: v >= 0, "0 or more"),
           ("max_minutes", lambda v: v is None or v > 0, "above 0"),
           ("seed", lambda v: 0 <= v < 2 ** 32, "in [0, 2^32)")]


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="FER2013 CSV (.csv/.csv.gz), image folder or .npz; None: datasets/fer2013.csv(.gz)")
    parser.add_argument("--out", default=str(NEW_DIR),
                        help="folder for the model, metrics and training log (resumable checkpoints "
                             "in its checkpoints/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished classifier in --out (e.g. the committed judge)")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training faces")
    parser.add_argument("--batch_size", type=int, default=64, help="faces per step")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam's peak learning rate")
    parser.add_argument("--warmup_epochs", type=int, default=1,
                        help="linear warm-up, then cosine decay to 0 at the last epoch")
    parser.add_argument("--label_smoothing", type=float, default=0.1,
                        help="share of each target spread over the 7 classes")
    parser.add_argument("--class_weight_power", type=float, default=0.5,
                        help="class weights (count_max / count)^power; 0 = unweighted")
    parser.add_argument("--max_minutes", type=float, default=None,
                        help="stop after the first epoch that ends past this wall time; "
                             "the same command again continues")
    parser.add_argument("--val_fraction", type=float, default=0.1,
                        help="share of Training held out to pick the best epoch")
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv block")
    parser.add_argument("--num_blocks", type=int, default=4,
                        help="conv blocks, each doubling the channels and halving the size")
    parser.add_argument("--dense_units", type=int, default=256, help="width of the 'features' layer")
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="after each conv block; twice this before the output layer")
    parser.add_argument("--seed", type=int, default=0, help="weights, split and augmentation")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress: 1 = bar, 2 = one line per epoch (for log files)")
    args = parser.parse_args(argv)
    for name, ok, requirement in _LIMITS:
        if not ok(getattr(args, name)):
            _fail(f"--{name} must be {requirement}, got {getattr(args, name)}")
    out_dir = pathlib.Path(args.out)
    if (out_dir / MODEL_FILE).exists() and not args.overwrite:
        _fail(f"{out_dir / MODEL_FILE} exists; pass --overwrite to replace it, or choose another --out")

    try:
        data = load_fer2013(args.data)
        training, public_test = data.split("Training"), data.split("PublicTest")
    except DataError as err:
        _fail(err)
    train_idx, val_idx = _validation_split(training.labels, args.val_fraction, args.seed)
    checkpoint_dir = out_dir / "checkpoints"
    try:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"{out_dir}: cannot write here ({err.strerror})")
    model = build_classifier(args.width, args.num_blocks, args.dense_units, args.dropout)
    resuming = (checkpoint_dir / "backup").exists()
    print(f"{data.source}: training on {len(train_idx)} faces, choosing the epoch on {len(val_idx)}, "
          f"testing on {len(public_test)} PublicTest faces; {model.count_params():,} parameters, "
          f"backend {keras.backend.backend()}; {'resuming from' if resuming else 'checkpoints in'} "
          f"{checkpoint_dir}")

    log_file = out_dir / LOG_FILE
    model, history = train_classifier(
        training.images[train_idx], training.labels[train_idx],
        training.images[val_idx], training.labels[val_idx], model=model, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        class_weight_power=args.class_weight_power, seed=args.seed, checkpoint_dir=checkpoint_dir,
        max_minutes=args.max_minutes, verbose=args.verbose,
        extra_callbacks=[_epoch_seconds(), keras.callbacks.CSVLogger(str(log_file), append=True)])
    if history.epoch and history.epoch[-1] + 1 < args.epochs:  # --max_minutes ended it
        print(f"stopped after epoch {history.epoch[-1] + 1} of {args.epochs}; run the same command "
              f"again to continue from {checkpoint_dir}")
        return None

    model = with_flip_averaging(model)
    predicted = predict_labels(model, to_float(public_test.images))
    accuracy = float(np.mean(predicted == public_test.labels))
    curve = np.genfromtxt(log_file, delimiter=",", names=True)
    metrics = {
        "publictest_accuracy": accuracy,
        "publictest_n": len(public_test),
        "publictest_per_class_accuracy": per_class_accuracy(predicted, public_test.labels),
        "test_time": "mean of each face and its mirror image",
        "best_val_accuracy": float(np.max(curve["val_accuracy"])),
        "best_epoch": int(np.argmax(curve["val_accuracy"])) + 1,
        "epochs_run": args.epochs,
        "train_n": int(len(train_idx)),
        "val_n": int(len(val_idx)),
        "train_seconds": round(float(np.sum(curve["seconds"])), 1),
        "backend": keras.backend.backend(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": str(data.source),
        "config": {k: v for k, v in vars(args).items() if k not in ("data", "out", "verbose", "overwrite")},
        "parameters": int(model.count_params()),
    }
    _save_atomically(model, metrics, out_dir)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print(f"PublicTest accuracy {accuracy:.4f} (N={len(public_test)}), {args.epochs} epochs in "
          f"{metrics['train_seconds'] / 60:.1f} min; saved {out_dir / MODEL_FILE}")
    return metrics


if __name__ == "__main__":
    main()
