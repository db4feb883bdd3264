"""Layers that Keras 3 does not have and more than one family may need.

:class:`LocallyConnected2D` is a convolution whose weights are not shared: every output
position has its own kernel. CaloGAN (Paganini, de Oliveira, Nachman, PRL 120, 042003
(2018)) builds on it, because a calorimeter is not translation invariant: the shower
core always sits in the same cells, and a cell's neighbourhood means something different
at the centre and at the edge. Keras 2 had this layer; Keras 3 dropped it.
"""
from __future__ import annotations

import keras
from keras import ops


def _pair(value, name: str) -> tuple:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them; received {value!r}.")
    return tuple(int(v) for v in pair)


@keras.saving.register_keras_serializable(package="zoo")
class LocallyConnected2D(keras.layers.Layer):
    """A 'valid' 2D convolution with a separate kernel and bias at every output position.

        y[b, i, j, f] = bias[i, j, f] + sum_{a, c, k} x[b, i s_h + a, j s_w + c, k] W[i, j, (a k_w + c) C + k, f]

    for channels-last inputs (batch, H, W, C) of a fixed size; pad beforehand (ZeroPadding2D)
    for 'same'. Weights: kernel (H_out, W_out, k_h k_w C, filters), bias (H_out, W_out, filters),
    so the layer has H_out W_out times the parameters of a convolution.

    Args:
        filters: output channels.
        kernel_size, strides: an integer or a pair (rows, columns).
        activation, use_bias, kernel_initializer, bias_initializer: as in ``keras.layers.Conv2D``.
    """

    def __init__(self, filters: int, kernel_size, strides=1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"filters must be a positive integer; received {filters!r}.")
        self.filters = int(filters)
        self.kernel_size, self.strides = _pair(kernel_size, "kernel_size"), _pair(strides, "strides")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def output_grid(self, input_shape) -> tuple:
        """(H_out, W_out) of a (batch, H, W, C) input."""
        rows, columns = input_shape[1], input_shape[2]
        if rows is None or columns is None:
            raise ValueError(f"LocallyConnected2D needs a fixed input size; received shape {tuple(input_shape)}.")
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.strides
        if rows < k_h or columns < k_w:
            raise ValueError(f"Input of {rows} x {columns} is smaller than the {k_h} x {k_w} kernel.")
        return (rows - k_h) // s_h + 1, (columns - k_w) // s_w + 1

    def build(self, input_shape):
        out_rows, out_columns = self.output_grid(input_shape)
        patch = self.kernel_size[0] * self.kernel_size[1] * input_shape[-1]
        self.kernel = self.add_weight(shape=(out_rows, out_columns, patch, self.filters),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(out_rows, out_columns, self.filters), initializer=self.bias_initializer,
                                    name="bias") if self.use_bias else None

    def call(self, x):
        y = ops.einsum("bhwk,hwkf->bhwf", self.patches(x), self.kernel)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def patches(self, x):
        """(batch, H_out, W_out, k_h k_w C): each output position's input window, (a k_w + c) C + k ordered.

        Built from k_h k_w strided slices, which cost no arithmetic (an identity convolution,
        as ``ops.image.extract_patches`` does it, costs (k_h k_w C)^2 per position)."""
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.strides
        out_rows, out_columns = self.output_grid(x.shape)
        windows = [x[:, a:a + s_h * (out_rows - 1) + 1:s_h, c:c + s_w * (out_columns - 1) + 1:s_w, :]
                   for a in range(k_h) for c in range(k_w)]
        return ops.concatenate(windows, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_grid(input_shape), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
