"""FER2013 expression classifier: the judge of expression accuracy and FID's offline extractor.

A VGG-style CNN: `num_blocks` blocks of two 3x3 conv + BatchNorm + ReLU, max-pool and dropout,
channels doubling from `width`; then a Dense layer named "features" (the penultimate layer that
fid.py reads) and a 7-way softmax. Flips, small shifts and zooms are keras preprocessing layers
inside the model, so they act only while training.

    python classifier.py --data datasets/fer2013.csv --epochs 30 --out saved_models/expression_classifier/

trains on the Training split (a seeded slice of it steers early stopping and the learning rate),
reports PublicTest accuracy once at the end, and writes `classifier.keras` and `metrics.json`
atomically into --out. The same code with a tiny width is the synthetic-faces judge.
"""
import argparse
import datetime
import json
import pathlib
import shutil
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
DEFAULT_DIR = REPO_ROOT / "saved_models" / "expression_classifier"


def build_classifier(width=32, num_blocks=4, dense_units=256, dropout=0.25, augment=True):
    """The classifier: input (48, 48, 1) float in [-1, 1], softmax over the 7 emotions."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    x = inputs
    if augment:
        x = layers.RandomFlip("horizontal", name="flip")(x)
        x = layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", name="shift")(x)
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
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(dense_units, activation="relu", name="features")(x)
    x = layers.Dropout(2 * dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="expression_classifier")


def train_classifier(train_images, train_labels, val_images=None, val_labels=None, *,
                     model=None, epochs=30, batch_size=64, learning_rate=1e-3, patience=6,
                     seed=0, checkpoint_dir=None, max_minutes=None, verbose=1):
    """Fit a classifier on uint8 faces (N, 48, 48) with labels 0..6; returns (model, history).

    With validation faces, ReduceLROnPlateau and EarlyStopping watch validation accuracy and the
    best epoch's weights are restored at the end; `checkpoint_dir` then keeps each new best
    epoch as its own `.keras` file, so a crash mid-write never damages an earlier one.
    `max_minutes` ends training after the first epoch that finishes past that wall time.
    """
    keras.utils.set_random_seed(seed)
    model = model or build_classifier()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    validation = None
    callbacks = []
    if val_images is not None:
        validation = (to_float(val_images), np.asarray(val_labels, np.int64))
        callbacks = [
            keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5,
                                              patience=max(1, patience // 3), verbose=verbose),
            keras.callbacks.EarlyStopping("val_accuracy", patience=patience,
                                          restore_best_weights=True, verbose=verbose),
        ]
        if checkpoint_dir is not None:
            pathlib.Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(pathlib.Path(checkpoint_dir) / "best_epoch{epoch:03d}.keras"),
                monitor="val_accuracy", save_best_only=True))
    if max_minutes is not None:
        deadline = time.time() + 60.0 * max_minutes

        def stop_after_deadline(epoch, logs):
            if time.time() > deadline:
                print(f"Epoch {epoch + 1}: past the {max_minutes}-minute limit, stopping")
                model.stop_training = True

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=stop_after_deadline))
    history = model.fit(to_float(train_images), np.asarray(train_labels, np.int64),
                        validation_data=validation, epochs=epochs, batch_size=batch_size,
                        shuffle=True, callbacks=callbacks, verbose=verbose)
    return model, history


def load_classifier(path=DEFAULT_DIR):
    """Load a saved classifier from its `.keras` file or the folder holding `classifier.keras`."""
    path = pathlib.Path(path)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="FER2013 CSV (.csv/.csv.gz) or image folder")
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="folder for the model and metrics")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=6, help="early-stopping patience (epochs)")
    parser.add_argument("--max_minutes", type=float, default=None,
                        help="stop after the first epoch that ends past this wall time")
    parser.add_argument("--val_fraction", type=float, default=0.1,
                        help="share of Training held out to steer early stopping and the LR")
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv block")
    parser.add_argument("--num_blocks", type=int, default=4)
    parser.add_argument("--dense_units", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress: 1 = bar, 2 = one line per epoch (for log files)")
    args = parser.parse_args(argv)

    try:
        data = load_fer2013(args.data)
        training, public_test = data.split("Training"), data.split("PublicTest")
    except DataError as err:
        raise SystemExit(f"error: {err}")
    train_idx, val_idx = _validation_split(training.labels, args.val_fraction, args.seed)
    out_dir = pathlib.Path(args.out)
    checkpoint_dir = out_dir / "checkpoints"
    model = build_classifier(args.width, args.num_blocks, args.dense_units)
    print(f"{data.source}: training on {len(train_idx)} faces, steering on {len(val_idx)}, "
          f"testing on {len(public_test)} PublicTest faces; {model.count_params():,} parameters, "
          f"backend {keras.backend.backend()}")

    start = time.time()
    model, history = train_classifier(
        training.images[train_idx], training.labels[train_idx],
        training.images[val_idx], training.labels[val_idx], model=model, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        seed=args.seed, checkpoint_dir=checkpoint_dir, max_minutes=args.max_minutes,
        verbose=args.verbose)
    train_seconds = time.time() - start

    predicted = predict_labels(model, to_float(public_test.images))
    accuracy = float(np.mean(predicted == public_test.labels))
    metrics = {
        "publictest_accuracy": accuracy,
        "publictest_n": len(public_test),
        "publictest_per_class_accuracy": per_class_accuracy(predicted, public_test.labels),
        "best_val_accuracy": float(max(history.history["val_accuracy"])),
        "epochs_run": len(history.history["loss"]),
        "epochs_requested": args.epochs,
        "train_n": int(len(train_idx)),
        "val_n": int(len(val_idx)),
        "train_seconds": round(train_seconds, 1),
        "backend": keras.backend.backend(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": str(data.source),
        "config": {k: v for k, v in vars(args).items() if k not in ("data", "out", "verbose")},
        "parameters": int(model.count_params()),
    }
    _save_atomically(model, metrics, out_dir)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print(f"PublicTest accuracy {accuracy:.4f} (N={len(public_test)}), "
          f"{metrics['epochs_run']} epochs in {train_seconds / 60:.1f} min; "
          f"saved {out_dir / MODEL_FILE}")
    return metrics


if __name__ == "__main__":
    main()
