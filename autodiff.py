"""Gradients on each backend, behind one interface the trainer's GAN step is written against.

Keras 3 has no backend-neutral way to take gradients inside a custom train step, so each backend
has a small adapter:

    forward(variables, fn) -> (outputs, backward)   run fn() once, keep it for a later gradient:
        backward(loss_fn) -> ((total, terms), grads wrt variables) of loss_fn(outputs)
    value_and_grad(variables, fn) -> ((total, terms), grads wrt variables)
    apply(optimizer, grads, variables)

`fn`/`loss_fn` return (total, {term: value}); only `total` is differentiated. A gradient with respect
to a step's *inputs* (an R1 penalty on D's real faces) would be one more method here, beside
value_and_grad, on each adapter.
"""
import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras


def for_backend(scope=None, variables=None):
    """The adapter of the running backend. JAX's works on values inside the train step's
    StatelessScope `scope`, which maps `variables` (every variable of the step) to their values."""
    backend = keras.backend.backend()
    if backend == "jax":
        return Jax(scope, variables)
    return Tensorflow() if backend == "tensorflow" else Torch()


class Tensorflow:
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


class Torch:
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


class Jax:
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
