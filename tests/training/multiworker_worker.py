"""One process of the multi-worker test: train a small SciNet for a few steps, save the weights.

Run as ``python -m tests.training.multiworker_worker STRATEGY OUT.npz`` with TF_CONFIG set for
``multiworker``; ``cpu`` gives the single-process reference on the same global batches.
"""
import sys

import keras
import numpy as np

import zoo
from training.distribute import strategy_for, train_custom_loop

GLOBAL_BATCH, STEPS = 64, 6


def data():
    rng = np.random.default_rng(0)
    x = {"observations": rng.normal(size=(512, 50)).astype("float32"), "question": rng.uniform(0, 10, (512, 1)).astype("float32")}
    return x, np.sin(x["question"]).astype("float32")


def build_model():
    keras.utils.set_random_seed(0)
    return zoo.load("scinet-pendulum", pretrained=False, encoder_units=[16], decoder_units=[16])


def main(strategy_name, out):
    strategy = strategy_for(strategy_name)
    x, y = data()
    model, losses = train_custom_loop(
        strategy, build_model, lambda: keras.optimizers.SGD(0.01), x, y, GLOBAL_BATCH, STEPS, training=False,
    )
    np.savez(out, *[np.asarray(w) for w in model.get_weights()], losses=np.asarray(losses),
             replicas=strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
