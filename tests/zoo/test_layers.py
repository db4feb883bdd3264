"""LocallyConnected2D against a direct loop over output positions (the formula in its docstring)."""
import keras
import numpy as np
import pytest

from zoo.models.layers import LocallyConnected2D


def loop_reference(x, kernel, bias, kernel_size, strides):
    (k_h, k_w), (s_h, s_w) = kernel_size, strides
    out_rows, out_columns, _, filters = kernel.shape
    channels = x.shape[-1]
    y = np.zeros((x.shape[0], out_rows, out_columns, filters))
    for i in range(out_rows):
        for j in range(out_columns):
            for a in range(k_h):
                for c in range(k_w):
                    for k in range(channels):
                        w = kernel[i, j, (a * k_w + c) * channels + k]
                        y[:, i, j] += x[:, i * s_h + a, j * s_w + c, k, None] * w[None]
            if bias is not None:
                y[:, i, j] += bias[i, j]
    return y


@pytest.mark.parametrize("shape, kernel_size, strides, use_bias", [
    ((5, 7, 3), (2, 2), (1, 1), True),
    ((14, 98, 2), (3, 3), (1, 2), True),   # CaloGAN's layer-0 discriminator block shape
    ((4, 6, 1), (2, 3), (2, 1), False),
])
def test_matches_the_loop(shape, kernel_size, strides, use_bias):
    rng = np.random.default_rng(0)
    layer = LocallyConnected2D(4, kernel_size, strides, use_bias=use_bias, bias_initializer="random_normal")
    x = rng.normal(size=(3, *shape)).astype("float32")
    y = np.asarray(layer(x))
    expected = loop_reference(x.astype("float64"), np.asarray(layer.kernel, "float64"),
                              None if layer.bias is None else np.asarray(layer.bias, "float64"), kernel_size, strides)
    assert y.shape[1:] == layer.compute_output_shape((None, *shape))[1:]
    # float32 sums of k_h k_w C <= 18 products of O(1) terms: rounding below 1e-5
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


def test_weights_are_not_shared_and_the_config_round_trips():
    layer = LocallyConnected2D(2, 2, activation="relu")
    layer.build((None, 4, 4, 1))
    assert layer.kernel.shape == (3, 3, 4, 2) and layer.bias.shape == (3, 3, 2)
    clone = LocallyConnected2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((4, 4, 1)), layer])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 1)).astype("float32")
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_bad_arguments_and_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        LocallyConnected2D(2, (2, 0))
    with pytest.raises(ValueError, match="filters"):
        LocallyConnected2D(0, 2)
    with pytest.raises(ValueError, match="smaller than"):
        LocallyConnected2D(2, 5).build((None, 3, 3, 1))
    with pytest.raises(ValueError, match="fixed input size"):
        LocallyConnected2D(2, 2).build((None, None, 3, 1))
