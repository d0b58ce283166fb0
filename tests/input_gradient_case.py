"""R1's input gradient on the running backend, for tests/test_t3.py (imported there on TensorFlow, run
as a script on JAX and torch: python tests/input_gradient_case.py [D_WEIGHTS.npz OUT.npz]).

Kept apart from the test module so that the JAX and torch processes load only Keras and T3.
"""
import sys
from types import SimpleNamespace

import numpy as np

import ccyclegan_t3


def value_and_grad(variables, loss):
    """The running backend's autodiff adapter on `loss`, as the trainer's step calls it (on JAX
    compiled, in a StatelessScope over the variables' values)."""
    import keras

    import autodiff
    if keras.backend.backend() != "jax":
        return autodiff.for_backend().value_and_grad(variables, loss)
    import jax

    def stateless(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            return autodiff.for_backend(scope, variables).value_and_grad(variables, loss)
    return jax.jit(stateless)([v.value for v in variables])


def check_square_sum():
    """autodiff.value_and_input_grad on D(x) = sum(w * x^2): the input gradient is 2wx, and the
    R1-like penalty sum((2wx)^2) has the weight gradient 8w * sum over faces of x^2."""
    import keras
    from keras import ops

    import autodiff

    class SquareSum(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=tuple(shape[1:]), initializer=keras.initializers.RandomUniform(-1, 1, 1))

        def call(self, x):
            return ops.sum(self.w * ops.square(x), axis=(1, 2, 3))

    x = np.random.default_rng(0).uniform(-1, 1, (3, 5, 5, 1)).astype(np.float32)
    square_sum = SquareSum()
    square_sum.build(x.shape)

    def penalty():
        (value, _), grad = autodiff.value_and_input_grad(lambda faces: (square_sum(faces), None), x)
        return ops.sum(ops.square(grad)), {"value": value, "grad": grad}
    (_, terms), (w_grad,) = value_and_grad([square_sum.w], penalty)
    w = ops.convert_to_numpy(square_sum.w)
    np.testing.assert_allclose(ops.convert_to_numpy(terms["value"]), np.sum(w * x ** 2, axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(terms["grad"]), 2 * w * x, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(w_grad), 8 * w * np.sum(x ** 2, axis=0), rtol=1e-5)


def t3_d_loss(weights_path):
    """T3's D loss with R1 (gamma 10) on a 4-wide D with the weights in `weights_path`, on seeded
    faces (as D sees them without DiffAugment): its total, R1 term and weight gradients as numpy arrays."""
    from keras import ops

    config = ccyclegan_t3.Config(base_filters=4, r1_gamma=10.0, diff_augment=False)
    d = ccyclegan_t3.build_discriminator(config)
    with np.load(weights_path) as saved:
        d.set_weights([saved[str(i)] for i in range(len(saved.files))])
    faces = np.random.default_rng(1).uniform(-1, 1, (6, 48, 48, 1)).astype(np.float32)
    batch = SimpleNamespace(images=faces[:2], labels=np.array([1, 4], np.int32))
    (total, terms), grads = value_and_grad(d.trainable_variables, lambda: ccyclegan_t3.discriminator_loss(
        {"d": d}, batch, {"fakes": faces[2:]}, config))
    return {"total": ops.convert_to_numpy(total), "r1": ops.convert_to_numpy(terms["r1"]),
            **{f"grad/{i}": ops.convert_to_numpy(g) for i, g in enumerate(grads)}}


if __name__ == "__main__":
    check_square_sum()
    if len(sys.argv) == 3:
        np.savez(sys.argv[2], **t3_d_loss(sys.argv[1]))
