"""Translator: an experiment's `translate` and `reconstruct` over given networks, batched, on numpy arrays.

Used during training (trainer.GAN.translate: sample grids, the evaluation callback) and on a
finished run's generator (run_folder.load_translator: evaluate.py, translate.py).
"""
import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras
import numpy as np
from keras import ops

from data_loader import IMAGE_SIZE


class Translator:
    def __init__(self, experiment, config, nets):
        self.experiment, self.config, self.nets = experiment, config, nets
        images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
        labels = keras.Input((), dtype="int32")
        self._models = {"translate": keras.Model([images, labels], experiment.translate(nets, images, labels)),
                        "reconstruct": keras.Model([images, labels],
                                                   experiment.reconstruct(nets, images, labels, config))}

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
