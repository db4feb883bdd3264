"""The authors' TF1 checkpoints, loaded into the zoo's SciNet, give the original computation.

The original computation is written out here in plain numpy from the
checkpoint's variables (ELU hidden layers, linear outputs, latent mean taken
from the documented half of the encoder's last layer).
"""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.scinet import from_original_checkpoint


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def mlp(reader, names, x):
    for k, (w, b) in enumerate(names):
        x = x @ reader.get_tensor(w).astype(np.float64) + reader.get_tensor(b)
        if k < len(names) - 1:
            x = elu(x)
    return x


def layer_names(scope, short, count):
    return [(f"{scope}/{k}th_{short}_layer/w", f"{scope}/{k}th_{short}_layer/b") for k in range(count)]


@pytest.mark.parametrize("name", ["oscillator", "collision"])
def test_question_scinet_matches_original(reference_dir, name):
    args = json.loads((reference_dir / f"{name}.json").read_text())
    prefix = str(reference_dir / f"{name}.ckpt")
    reader = tf.train.load_checkpoint(prefix)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, args["input_size"]))
    question = rng.normal(size=(16, args["input2_size"]))

    n_enc, n_dec = len(args["encoder_num_units"]) + 1, len(args["decoder_num_units"]) + 1
    encoded = mlp(reader, layer_names("encoder", "enc", n_enc), obs)
    mean = encoded[:, args["latent_size"]:]  # [log_sigma | mean]
    expected = mlp(reader, layer_names("decoder", "dec", n_dec), np.concatenate([mean, question], axis=1))

    model = from_original_checkpoint(prefix, args)
    got = model.predict({"observations": obs, "question": question}, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(model.encode(obs), mean, atol=1e-5, rtol=1e-5)


def test_recurrent_scinet_matches_original_copernicus(reference_dir):
    args = json.loads((reference_dir / "copernicus.json").read_text())
    prefix = str(reference_dir / "copernicus.ckpt")
    reader = tf.train.load_checkpoint(prefix)
    rng = np.random.default_rng(1)
    first = rng.uniform(-np.pi, np.pi, size=(8, 2))

    enc = [(f"dynamic_encoder/{k}th_enc_layer/w_enc{k}", f"dynamic_encoder/{k}th_enc_layer/b_enc{k}") for k in range(3)]
    dec = [(f"RNN/decoder_vars/w_dec{k}", f"RNN/decoder_vars/b_dec{k}") for k in range(3)]
    state = np.tanh(mlp(reader, enc, first)[:, : args["latent_size"]])  # [mean | log_sigma], tanh on the mean
    step = reader.get_tensor("RNN/euler_vars/b_euler0")
    expected = []
    for _ in range(args["time_series_length"]):  # the original loop: decode, then r <- r + b
        expected.append(mlp(reader, dec, state))
        state = state + step
    expected = np.stack(expected, axis=1)

    model = from_original_checkpoint(prefix, args)
    got = model.predict(first, verbose=0)
    assert got.shape == (8, args["time_series_length"], 2)
    # float32 rounding of r(t_0) + k b versus 49 repeated additions stays below 1e-4
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)
    # in float64 the closed form and the original loop agree to 1e-5
    keras.config.set_dtype_policy("float64")
    try:
        model64 = from_original_checkpoint(prefix, args)
        got64 = np.asarray(model64(first))
    finally:
        keras.config.set_dtype_policy("float32")
    np.testing.assert_allclose(got64, expected, atol=1e-5, rtol=1e-5)
