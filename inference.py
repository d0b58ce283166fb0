"""Translator: an experiment's `translate` and `reconstruct` (and attention masks, where G has them) over
given networks, batched, on numpy arrays.

Used during training (trainer.GAN.translate: sample grids, the evaluation callback) and on a
finished run's generator (run_folder.load_translator: evaluate.py, translate.py, figures.py).
"""
import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras
import numpy as np
from keras import ops

from data_loader import IMAGE_SIZE


class Translator:
    def __init__(self, experiment, config, nets):
        self.experiment, self.config, self.nets = experiment, config, nets

        def reconstruct(nets, images, labels):
            return experiment.reconstruct(nets, images, labels, config)
        self._models = {"translate": self._model(experiment.translate), "reconstruct": self._model(reconstruct)}

    def _model(self, function):
        """keras.Model([images, labels] -> function(nets, images, labels)); None if that gives None."""
        images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
        labels = keras.Input((), dtype="int32")
        outputs = function(self.nets, images, labels)
        return None if outputs is None else keras.Model([images, labels], outputs)

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

    def has_masks(self):
        """Whether G composes its faces through attention masks (the experiment's optional
        `attention_masks`: T3 with --attention)."""
        if "masks" not in self._models:
            self._models["masks"] = self._model(getattr(self.experiment, "attention_masks", lambda *_: None))
        return self._models["masks"] is not None

    def masks(self, images, target_labels, batch_size=256):
        """G's attention masks (N, 48, 48, 1) in [0, 1] for these translations: 1 keeps the input's
        pixel, 0 takes G's colour. Only where has_masks()."""
        if not self.has_masks():
            raise ValueError(f"{self.experiment.__name__}: this generator has no attention masks")
        return self._predict("masks", images, target_labels, batch_size)
