"""blocks.Conv2D and blocks.Conv2DTranspose compute their Keras layers' functions, gradients
included, on every backend (each in a subprocess), with the same weights: their faster formulations
(a matmul on a kernel-sized input or a 1x1 map; on JAX, a transposed convolution's backward pass
through the strided convolution) change only rounding.
blocks.InstanceNormalization computes Keras' GroupNormalization(groups=-1).
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# (layer, input shape, filters, extra arguments): T2's decoder layers -- the 1x1 bottleneck layer
# (the matmul formulation), with and without bias, and the strided ones -- and its encoder's convs:
# 4x4 -> 1x1 (the matmul formulation), with and without bias, and a strided one.
CASES = [("Conv2DTranspose", (1, 1, 12), 6, {}), ("Conv2DTranspose", (1, 1, 12), 6, {"use_bias": True}),
         ("Conv2DTranspose", (4, 4, 8), 4, {}), ("Conv2DTranspose", (10, 10, 6), 3, {"output_padding": 1}),
         ("Conv2DTranspose", (23, 23, 4), 1, {"use_bias": True}),
         ("Conv2D", (4, 4, 8), 6, {}), ("Conv2D", (4, 4, 8), 6, {"use_bias": True}),
         ("Conv2D", (10, 10, 6), 3, {})]

DRIVER = textwrap.dedent("""
    import json, sys
    import backend_env, keras, numpy as np
    import blocks as ours

    def gradients(layer, x, dy):
        '''(output, d<output, dy>/dx, d<output, dy>/dweights) as numpy arrays.'''
        weights = [v.value for v in layer.trainable_variables]
        backend = keras.backend.backend()
        def f(w, x):
            return layer.stateless_call(w, [], x)[0]
        if backend == "tensorflow":
            import tensorflow as tf
            x, w = tf.constant(x), [tf.identity(v) for v in weights]
            with tf.GradientTape() as tape:
                tape.watch([x, *w])
                y = f(w, x)
            grads = tape.gradient(y, [x, *w], output_gradients=tf.constant(dy))
        elif backend == "jax":
            import jax
            y, vjp = jax.vjp(lambda x, *w: f(list(w), x), x, *weights)
            grads = vjp(dy)
        else:
            import torch
            x = torch.tensor(x, requires_grad=True)
            w = [v.detach().clone().requires_grad_(True) for v in weights]
            y = f(w, x)
            (y * torch.tensor(dy)).sum().backward()
            grads = [x.grad, *(v.grad for v in w)]
        return [keras.ops.convert_to_numpy(t) for t in (y, *grads)]

    errors = []
    for name, shape, filters, extra in json.loads(sys.argv[1]):
        kwargs = {"filters": filters, "kernel_size": 4, "strides": 2, "padding": "valid",
                  "use_bias": False, "bias_initializer": "random_normal", **extra}
        reference, layer = getattr(keras.layers, name)(**kwargs), getattr(ours, name)(**kwargs)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(5, *shape)).astype("float32")
        reference.build(x.shape), layer.build(x.shape)
        layer.set_weights(reference.get_weights())
        dy = rng.normal(size=(5, *reference.compute_output_shape(x.shape)[1:])).astype("float32")
        expected, got = gradients(reference, x, dy), gradients(layer, x, dy)
        assert [a.shape for a in got] == [a.shape for a in expected]
        errors.append([float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(got, expected)])
    print(json.dumps(errors))
""")


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_convolutions_match_keras_outputs_and_gradients(backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(CASES)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    for case, case_errors in zip(CASES, errors):  # output, input gradient, weight gradients
        assert max(case_errors) < 1e-5, f"{case}: max relative errors {case_errors}"


def test_instance_normalization_is_keras_group_normalization_with_one_group_per_channel():
    """Its output is Keras' layer's (here on TensorFlow), and it reloads from its config; that its
    gradients of gradients are right on every backend, tests/test_t3.py checks through R1."""
    import keras
    import numpy as np

    import blocks
    rng = np.random.default_rng(0)
    x = (3 * rng.normal(size=(3, 10, 10, 6)) + 1).astype("float32")
    reference, layer = keras.layers.GroupNormalization(groups=-1), blocks.InstanceNormalization()
    reference.build(x.shape), layer.build(x.shape)
    weights = [rng.normal(size=(6,)).astype("float32") for _ in range(2)]  # gamma, beta
    reference.set_weights(weights), layer.set_weights(weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(reference(x)),
                               atol=1e-6)
    assert blocks.InstanceNormalization.from_config(layer.get_config()).groups == -1
