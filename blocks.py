"""Building blocks shared by the experiment scripts (ccyclegan_t1.py, ccyclegan_t2.py, ccyclegan_t3.py).

Only what two experiments would otherwise copy lives here: the instance-norm conv block and the
label helpers. The layers are registered with Keras, so saved generators reload anywhere this
module is importable.
"""
import functools

import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras
from keras import layers, ops

from data_loader import NUM_CLASSES


def conv_block(x, filters, *, strides=2, kernel_size=4, padding="same", transpose=False,
               norm=True, activation="leaky_relu", output_padding=None, name=None):
    """(Transposed) conv -> instance norm -> activation.

    Instance norm on a 1x1 map would output only its beta, so pass `norm=False` there. A normalised
    conv has no bias: the norm subtracts it again, so its gradient is only rounding noise (which Adam
    would amplify).
    """
    if transpose:
        x = Conv2DTranspose(filters, kernel_size, strides=strides, padding=padding,
                            output_padding=output_padding, use_bias=not norm, name=name)(x)
    else:
        x = Conv2D(filters, kernel_size, strides=strides, padding=padding,
                   use_bias=not norm, name=name)(x)
    if norm:
        x = InstanceNormalization()(x)
    if activation == "leaky_relu":
        return layers.LeakyReLU(0.2)(x)
    return layers.Activation(activation)(x)


def upsample_block(x, filters, size, *, resize=False, **conv):
    """x -> a (size, size) map through `conv_block`: a 4x4 stride-2 transposed conv with valid padding
    (T2's; output padding makes up an odd size), or with `resize` a bilinear resize to size + 2 and a
    3x3 valid conv. A transposed conv whose stride the kernel overlaps unevenly or whose taps learn
    different weights paints a period-2 pattern on its output (the checkerboard of Odena et al.
    2016, "Deconvolution and Checkerboard Artifacts"); after a resize every output pixel is made the
    same way, so a smooth input gives a smooth output."""
    if resize:
        x = layers.Resizing(size + 2, size + 2, interpolation="bilinear")(x)
        return conv_block(x, filters, strides=1, kernel_size=3, padding="valid", **conv)
    output_padding = size - (2 * (x.shape[1] - 1) + 4)
    return conv_block(x, filters, transpose=True, padding="valid", output_padding=output_padding or None, **conv)


@keras.saving.register_keras_serializable(package="ccyclegan")
class InstanceNormalization(layers.GroupNormalization):
    """Keras' GroupNormalization(groups=-1) -- instance norm, one group per channel -- whose
    variance is differentiable to every order.

    TensorFlow's moments stop the gradient through the mean inside the variance: right for a
    gradient, wrong for the gradient of a gradient, which an R1 penalty takes through D
    (ccyclegan_t3.py): there D's weight gradients on TensorFlow came out a few percent off JAX's and
    torch's. Computed here with `ops.var`, the same formula as Keras' layer otherwise.
    """

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "groups": -1})

    def call(self, inputs):
        axes = tuple(range(1, len(inputs.shape) - 1))  # all but the batch and the channels
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        inv = ops.rsqrt(ops.var(inputs, axis=axes, keepdims=True) + self.epsilon) * self.gamma
        return inputs * inv + (self.beta - mean * inv)


@keras.saving.register_keras_serializable(package="ccyclegan")
class Mirror(layers.Layer):
    """Images (N, H, W, C) mirrored left to right, always (RandomFlip only flips while training)."""

    def call(self, images):
        return ops.flip(images, axis=2)


@keras.saving.register_keras_serializable(package="ccyclegan")
class OneHot(layers.Layer):
    """int labels (N,) -> float32 one-hot (N, num_classes)."""

    def __init__(self, num_classes=NUM_CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels):
        return ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="ccyclegan")
class LabelMap(layers.Layer):
    """int labels (N,) -> one-hot planes (N, H, W, num_classes) the size of `like` (N, H, W, C)."""

    def __init__(self, num_classes=NUM_CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels, like):
        one_hot = ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=self.compute_dtype)
        height, width = ops.shape(like)[1], ops.shape(like)[2]
        return ops.broadcast_to(one_hot[:, None, None, :],
                                (ops.shape(like)[0], height, width, self.num_classes))

    def compute_output_shape(self, labels_shape, like_shape):
        return (*like_shape[:3], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="ccyclegan")
class Conv2D(layers.Conv2D):
    """keras.layers.Conv2D (same weights, config and function); on an input the size of its kernel
    with "valid" padding (T2's G_enc and D go 4x4 -> 1x1), one matmul of the flattened input with
    the flattened kernel, which is what that convolution computes. TensorFlow's convolution kernels
    run this shape at 7 % of the matmul peak (bench/bench_train.py's per-layer profile)."""

    def call(self, inputs):
        if not self._is_dense(inputs):
            return super().call(inputs)
        kh, kw, channels, out = self.kernel.shape
        outputs = ops.matmul(ops.reshape(inputs, (-1, kh * kw * channels)),
                             ops.reshape(self.kernel, (kh * kw * channels, out)))
        if self.use_bias:
            outputs = outputs + self.bias
        outputs = ops.reshape(outputs, (-1, 1, 1, out))
        return outputs if self.activation is None else self.activation(outputs)

    def _is_dense(self, inputs):
        return (self.data_format == "channels_last" and self.padding == "valid" and self.groups == 1
                and tuple(inputs.shape[1:3]) == tuple(self.kernel_size)
                and tuple(self.dilation_rate) == (1, 1))


@keras.saving.register_keras_serializable(package="ccyclegan")
class Conv2DTranspose(layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose (same weights, config and function) through faster kernels.

    - On a 1x1 map with "valid" padding (T2's first decoder layer), a transposed convolution is a
      dense layer: every output pixel is the input vector times one kernel tap. One matmul runs it
      7x faster than TensorFlow's transposed-convolution kernel with oneDNN on, and ~50x faster
      than Eigen's (bench/bench_train.py's per-layer profile), forward and backward, on every backend.
    - XLA's CPU backend computes a transposed convolution's kernel gradient 3-6x slower than the
      kernel gradient of the strided convolution it is the transpose of, and it dominates a JAX
      training step on CPU. On JAX the backward pass therefore goes through that strided
      convolution (`_via_strided_backward`).
    Elsewhere Keras' layer runs unchanged.
    """

    def call(self, inputs):
        if self._is_dense(inputs):
            outputs = self._dense(inputs)
        elif keras.backend.backend() == "jax":
            conv = functools.partial(ops.conv_transpose, strides=list(self.strides), padding=self.padding,
                                     output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
            outputs = _via_strided_backward(conv)(inputs, ops.convert_to_tensor(self.kernel))
        else:
            return super().call(inputs)
        if self.use_bias:
            outputs = outputs + ops.reshape(self.bias, (1,) * (self.rank + 1) + (self.filters,))
        return outputs if self.activation is None else self.activation(outputs)

    def _is_dense(self, inputs):
        return (self.data_format == "channels_last" and self.padding == "valid"
                and tuple(inputs.shape[1:3]) == (1, 1) and not any(self.output_padding or ())
                and tuple(self.dilation_rate) == (1, 1))

    def _dense(self, inputs):
        """(N, 1, 1, in) -> (N, kh, kw, out): output pixel (i, j) = input @ kernel[i, j].T."""
        kh, kw, out, channels = self.kernel.shape
        kernel = ops.reshape(ops.transpose(self.kernel, (3, 0, 1, 2)), (channels, kh * kw * out))
        return ops.reshape(ops.matmul(ops.reshape(inputs, (-1, channels)), kernel), (-1, kh, kw, out))


def _via_strided_backward(conv_transpose):
    """conv_transpose(x, kernel), whose gradients come from its transpose, a strided convolution."""
    import jax

    def strided(dy, kernel, like):
        return jax.linear_transpose(lambda x: conv_transpose(x, kernel), like)(dy)[0]

    @jax.custom_vjp
    def fn(x, kernel):
        return conv_transpose(x, kernel)

    def forward(x, kernel):
        return conv_transpose(x, kernel), (x, kernel)

    def backward(saved, dy):
        x, kernel = saved
        # <dy, convT(x, k)> = <strided(dy, k), x>: the same gradients, through the fast kernels.
        x_grad, kernel_vjp = jax.vjp(lambda k: strided(dy, k, x), kernel)
        return x_grad, kernel_vjp(x)[0]

    fn.defvjp(forward, backward)
    return fn
