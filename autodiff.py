"""Gradients on each backend, behind one interface the trainer's GAN step is written against.

Keras 3 has no backend-neutral way to take gradients inside a custom train step, so each backend
has a small adapter:

    forward(variables, fn) -> (outputs, backward)   run fn() once, keep it for a later gradient:
        backward(loss_fn) -> ((total, terms), grads wrt variables) of loss_fn(outputs)
    value_and_grad(variables, fn) -> ((total, terms), grads wrt variables)
    constant(fn) -> fn()'s outputs, with nothing kept for a gradient (a forward pass no update needs)
    apply(optimizer, grads, variables)
    value_and_input_grad(fn, inputs) -> ((value, aux), d sum(value) / d inputs) of fn(inputs)

`fn`/`loss_fn` return (total, {term: value}); only `total` is differentiated. `value_and_input_grad`
serves inside a loss (an R1 penalty on D's real faces, ccyclegan_t3.py): the module-level function
of that name calls the running backend's. Its gradient stays differentiable with respect to the
variables `fn` reads, so a penalty on it trains them (second-order gradients); `inputs` are data,
and no gradient flows back into whatever computed them.
"""
import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras


def value_and_input_grad(fn, inputs):
    """fn(inputs) -> (value, aux) run once; returns ((value, aux), gradient of sum(value) w.r.t. inputs)."""
    return for_backend().value_and_input_grad(fn, inputs)


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
    def constant(fn):
        return fn()  # no tape is recording

    @staticmethod
    def value_and_input_grad(fn, inputs):
        import tensorflow as tf
        inputs = tf.convert_to_tensor(inputs)
        # A tape of its own; the caller's tape, if one is recording, records this gradient too.
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value, aux = fn(inputs)
        return (value, aux), tape.gradient(value, inputs)

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
    def constant(fn):
        import torch
        with torch.no_grad():
            return fn()

    @staticmethod
    def value_and_input_grad(fn, inputs):
        import torch
        inputs = torch.as_tensor(inputs).detach().requires_grad_(True)
        value, aux = fn(inputs)
        # create_graph: the gradient joins the graph, so the loss's backward() differentiates it again
        (grad,) = torch.autograd.grad(value.sum(), inputs, create_graph=True)
        return (value, aux), grad

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

    def constant(self, fn):
        return self._run_with([], [], fn)  # no vjp: nothing is kept

    @staticmethod
    def value_and_input_grad(fn, inputs):
        import jax

        def summed(x):
            value, aux = fn(x)
            return jax.numpy.sum(value), (value, aux)
        # Traced inside the caller's loss: fn reads the variables of the StatelessScope around it, and
        # the caller's jax.value_and_grad differentiates through this one.
        (_, outputs), grad = jax.value_and_grad(summed, has_aux=True)(inputs)
        return outputs, grad

    @staticmethod
    def apply(optimizer, grads, variables):
        optimizer.apply(grads, variables)
