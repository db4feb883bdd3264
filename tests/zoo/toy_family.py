"""A family defined only under tests/: the proof that the contract carries a new family with no change elsewhere.

A linear autoencoder x -> code -> x' with two endpoints (``serving_default``:
the reconstruction; ``encode``: the code) that trains with its own
``train_step`` on inputs alone, as a flow or an RBM does.
"""
import keras
import numpy as np
from keras import ops

from zoo.models.base import ZooModel
from zoo.spec import Endpoint, Family, FineTuning, PresetSpec, TensorSpec, TrainingSpec


@keras.saving.register_keras_serializable(package="zoo_toy")
class ToyAutoencoder(ZooModel):
    """x (batch, size) -> code = E x (batch, code_size) -> x' = D code."""

    training_spec = TrainingSpec(loss=None, multiworker_refusal="The toy trains with its own train_step only.")
    fine_tuning = FineTuning(groups=("encoder", "decoder"), loss=None, error_name="held-out reconstruction RMS")

    def __init__(self, size=4, code_size=2, **kwargs):
        super().__init__(**kwargs)
        self.size, self.code_size = int(size), int(code_size)
        self.encoder = keras.layers.Dense(self.code_size, name="encoder")
        self.decoder = keras.layers.Dense(self.size, name="decoder")

    def call(self, x, training=False):
        return self.decoder(self.encoder(x))

    def endpoints(self):
        x = TensorSpec("x", (None, self.size), "a point")
        return (
            self.call_endpoint((x,), TensorSpec("reconstruction", (None, self.size), "x'"), "x -> x'"),
            Endpoint("encode", lambda x: {"code": self.encoder(x)}, (x,),
                     (TensorSpec("code", (None, self.code_size), "the code"),), description="x -> code"),
        )

    def layer_groups(self):
        return {"encoder": [self.encoder], "decoder": [self.decoder]}

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self(x, training=True) - x))
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        return {"loss": loss}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return {"loss": ops.mean(ops.square(self(x) - x))}

    def fine_tuning_error(self, inputs, target):
        x = inputs["x"]
        return float(np.sqrt(np.mean((self.predict(x) - x) ** 2)))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "code_size": self.code_size}


FAMILY = Family(
    name="toy",
    module=__name__,
    presets=(
        PresetSpec(name="toy-autoencoder", model_class=ToyAutoencoder, config={"size": 4, "code_size": 2},
                   summary="A linear autoencoder of 4 numbers.",
                   inputs=(TensorSpec("x", (None, 4), "four numbers"),),
                   outputs=(TensorSpec("reconstruction", (None, 4), "the four numbers again"),), paper="none"),
    ),
    intended_use="Proving the family contract.",
    limitations="Linear: a code of 2 keeps a 2D subspace only.",
    tiny_overrides={"code_size": 1},
    card_sections=lambda metadata: f"\n### Toy section\n\nThe code has {metadata['code_size']} numbers.\n",
)

