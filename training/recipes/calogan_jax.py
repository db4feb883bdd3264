"""Train CaloGAN's two networks with JAX, for accelerators that have JAX but no TensorFlow.

    KERAS_BACKEND=jax python -m training.recipes.calogan_jax --out runs/calogan-jax --minutes 7

The same Keras networks as the zoo's TensorFlow model (:mod:`zoo.models.calogan_networks`)
and the same loss (``adversarial_loss``), in one jit-compiled step that follows the
paper's loop: a discriminator step on simulated showers, one on generated showers,
then two generator steps. The data come from the zoo's simulator (numpy only), made
on every core in parallel. Written out: ``generator.weights.h5`` and
``discriminator.weights.h5`` (loaded by ``training.recipes.calogan`` into the zoo
model), generator snapshots at fixed fractions of the run (the recipe picks one on
validation showers), the optimizer state for a resume, and ``history.json``.
This is the paper's generator; the zoo's energy head, where a preset has one, is fitted
when the run is installed (``training.recipes.calogan.install_from_run``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

PARTICLES = ("eplus", "gamma", "piplus")
CHUNK = 5000  # showers per simulator call


def _simulate_chunk(job):
    from training.simulators import calorimeter

    particle, n, seed = job
    showers = calorimeter.simulate(particle, n, seed)
    return {k: showers[k] for k in ("energy", "layer_0", "layer_1", "layer_2")}


def simulate_training_set(n_per_particle: int, seed: int, workers: int, particles=PARTICLES) -> dict:
    """Showers of every particle in GeV with class indices; chunk c of particle p uses seed (seed, p, c)."""
    jobs = [(particle, min(CHUNK, n_per_particle - start), int(np.random.SeedSequence([seed, p, start // CHUNK])
                                                               .generate_state(1)[0]))
            for p, particle in enumerate(particles) for start in range(0, n_per_particle, CHUNK)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_simulate_chunk, jobs))
    data = {k: np.concatenate([part[k] for part in parts]).astype(np.float32) for k in parts[0]}
    for name in ("layer_0", "layer_1", "layer_2"):
        data[name] = data[name][..., None] / 1000.0  # MeV -> GeV, channel axis
    data["particle"] = np.concatenate([np.full(n, particles.index(job[0]), np.int32)
                                       for job, n in zip(jobs, (len(p["energy"]) for p in parts))])
    return data


def build(latent_size: int, filters: int, classes: int):
    import keras

    from zoo.models.calogan_networks import build_discriminator, build_generator

    generator, discriminator = build_generator(latent_size, classes), build_discriminator(filters, classes)
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-5, beta_1=0.5)
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    return generator, discriminator, g_opt, d_opt


def make_step(generator, discriminator, g_opt, d_opt, latent_size: int, classes: int, energy_range=(1.0, 100.0)):
    """One jit-compiled iteration of the paper's loop on the state (G vars, D vars, both optimizers' vars)."""
    import jax

    from zoo.models.calogan_networks import adversarial_loss

    def requests(key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        energy = jax.random.uniform(k1, (n, 1), minval=energy_range[0], maxval=energy_range[1])
        return jax.random.normal(k2, (n, latent_size)), energy, jax.random.randint(k3, (n,), 0, classes)

    def d_loss(d_tv, d_ntv, images, energy, particle, target):
        out, d_ntv = discriminator.stateless_call(d_tv, d_ntv, [*images, energy], training=True)
        loss, parts = adversarial_loss(out, target, energy, particle)
        return loss, (parts, d_ntv)

    def g_loss(g_tv, g_ntv, d_tv, d_ntv, noise, energy, particle):
        fake, g_ntv = generator.stateless_call(g_tv, g_ntv, [noise, energy, particle], training=True)
        out, _ = discriminator.stateless_call(d_tv, d_ntv, [*fake, energy], training=True)
        loss, parts = adversarial_loss(out, 1.0, energy, particle)
        return loss, (parts, g_ntv)

    d_grad = jax.value_and_grad(d_loss, has_aux=True)
    g_grad = jax.value_and_grad(g_loss, has_aux=True)

    def d_update(state, images, energy, particle, target):
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
        (_, (parts, d_ntv)), grads = d_grad(d_tv, d_ntv, images, energy, particle, target)
        d_tv, d_ov = d_opt.stateless_apply(d_ov, grads, d_tv)
        return (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov), parts

    @jax.jit
    def step(state, images, energy, particle, key):
        keys = jax.random.split(key, 3)
        n = energy.shape[0]
        state, real = d_update(state, images, energy, particle, 1.0)
        noise, fake_energy, fake_particle = requests(keys[0], n)
        fake, _ = generator.stateless_call(state[0], state[1], [noise, fake_energy, fake_particle], training=False)
        state, fake_parts = d_update(state, fake, fake_energy, fake_particle, 0.0)
        g_parts = []
        for key_g in keys[1:]:
            g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
            noise, energy_g, particle_g = requests(key_g, n)
            (_, (parts, g_ntv)), grads = g_grad(g_tv, g_ntv, d_tv, d_ntv, noise, energy_g, particle_g)
            g_tv, g_ov = g_opt.stateless_apply(g_ov, grads, g_tv)
            state = (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov)
            g_parts.append(parts)
        metrics = {"d_real": real["adversarial"], "d_fake": fake_parts["adversarial"],
                   "g_loss": (g_parts[0]["adversarial"] + g_parts[1]["adversarial"]) / 2,
                   "g_energy": (g_parts[0]["energy"] + g_parts[1]["energy"]) / 2}
        return state, metrics

    return step


def _state_of(generator, discriminator, g_opt, d_opt):
    values = lambda variables: [v.value for v in variables]
    return (values(generator.trainable_variables), values(generator.non_trainable_variables),
            values(discriminator.trainable_variables), values(discriminator.non_trainable_variables),
            values(g_opt.variables), values(d_opt.variables))


def _assign_state(state, generator, discriminator, g_opt, d_opt) -> None:
    groups = (generator.trainable_variables, generator.non_trainable_variables, discriminator.trainable_variables,
              discriminator.non_trainable_variables, g_opt.variables, d_opt.variables)
    for variables, values in zip(groups, state):
        for variable, value in zip(variables, values):
            variable.assign(value)


def save(out: Path, state, networks, step: int, history: dict, snapshot: str | None = None) -> None:
    """Weights of both networks, both optimizers' state and the history, each file written then renamed."""
    generator, discriminator, g_opt, d_opt = networks
    _assign_state(state, *networks)
    targets = {"generator.weights.h5": generator, "discriminator.weights.h5": discriminator}
    if snapshot:
        targets = {snapshot: generator}
    for name, network in targets.items():
        network.save_weights(out / f".{name}.tmp.weights.h5")
        os.replace(out / f".{name}.tmp.weights.h5", out / name)
    if not snapshot:
        for name, optimizer in (("generator", g_opt), ("discriminator", d_opt)):
            np.savez(out / f".optimizer-{name}.tmp.npz", *[np.asarray(v.value) for v in optimizer.variables])
            os.replace(out / f".optimizer-{name}.tmp.npz", out / f"optimizer-{name}.npz")
        (out / "history.json").write_text(json.dumps({"steps": step, **history}))


def resume(out: Path, networks) -> tuple:
    """(step, history) of a previous run in ``out`` loaded into the networks and optimizers, or (0, {})."""
    _, _, g_opt, d_opt = networks
    if not (out / "history.json").exists():
        return 0, {}
    for name, optimizer in (("generator", g_opt), ("discriminator", d_opt)):
        with np.load(out / f"optimizer-{name}.npz") as saved:
            for i, variable in enumerate(optimizer.variables):
                variable.assign(saved[f"arr_{i}"])
    return load_run(out, networks)


def load_run(run: Path, networks) -> tuple:
    """(step, history) of the run in ``run``, whose generator and discriminator weights are loaded."""
    generator, discriminator, *_ = networks
    generator.load_weights(run / "generator.weights.h5")
    discriminator.load_weights(run / "discriminator.weights.h5")
    history = json.loads((run / "history.json").read_text())
    return int(history.pop("steps")), history


def continue_from(run: Path, networks) -> tuple:
    """(step, history) of a finished run whose weights are loaded into the networks; the optimizers start
    afresh, and the history records at which step (Adam's moments are rebuilt within a few hundred steps)."""
    steps, history = load_run(run, networks)
    history["optimizers_restarted_at_step"] = steps
    return steps, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--showers", type=int, default=100_000, help="training showers per particle")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed of the training showers")
    parser.add_argument("--minutes", type=float, default=7.0, help="training wall time")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--latent-size", type=int, default=32)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--init", type=Path, default=None,
                        help="a finished run whose weights and step count to continue from, with fresh optimizers "
                             "(for a run whose optimizer state was not kept; a run in --out resumes fully instead)")
    parser.add_argument("--snapshots", type=int, default=4, help="generator snapshots at equal fractions of the run")
    parser.add_argument("--particles", default=",".join(PARTICLES), help="comma-separated classes, in this order")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--log-every", type=int, default=500, help="steps between log lines (and snapshot checks)")
    args = parser.parse_args(argv)

    import jax

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    particles = tuple(args.particles.split(","))
    data = simulate_training_set(args.showers, args.seed, args.workers, particles)
    n = len(data["energy"])
    print(f"{n} training showers simulated in {time.time() - start:.0f} s on {args.workers} workers; "
          f"devices {jax.devices()}", flush=True)
    networks = build(args.latent_size, args.filters, len(particles))
    step_fn = make_step(*networks, args.latent_size, len(particles))
    done, history = resume(args.out, networks)
    if not done and args.init is not None:
        done, history = continue_from(args.init, networks)
    state = _state_of(*networks)
    rng = np.random.default_rng(args.seed + done)
    key = jax.random.PRNGKey(args.seed + done)
    device_data = {k: jax.device_put(v) for k, v in data.items()}
    budget, train_start, step = args.minutes * 60.0, time.time(), done
    snapshot_marks = [budget * (i + 1) / (args.snapshots + 1) for i in range(args.snapshots)]
    log_every = args.log_every
    while True:
        order = jax.device_put(rng.permutation(n)[: (n // args.batch_size) * args.batch_size].reshape(-1, args.batch_size))
        for rows in order:
            images = [device_data[name][rows] for name in ("layer_0", "layer_1", "layer_2")]
            key, sub = jax.random.split(key)
            state, metrics = step_fn(state, images, device_data["energy"][rows], device_data["particle"][rows], sub)
            step += 1
            if step % log_every == 0:
                values = {k: float(v) for k, v in metrics.items()}
                for k, v in values.items():
                    history.setdefault(k, []).append(v)
                elapsed = time.time() - train_start
                history.setdefault("seconds", []).append(elapsed)
                print(f"step {step} ({elapsed:.0f} s): " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()), flush=True)
                if snapshot_marks and elapsed >= snapshot_marks[0]:
                    snapshot_marks.pop(0)
                    save(args.out, state, networks, step, history, snapshot=f"generator-step{step}.weights.h5")
            stop = time.time() - train_start >= budget or (args.max_steps and step >= args.max_steps)
            if stop:
                break
        if stop:
            break
    history["epochs"] = step * args.batch_size / n
    history["train_seconds"] = history.get("train_seconds", 0.0) + time.time() - train_start
    history["device"] = f"{jax.devices()[0].device_kind} ({jax.devices()[0]}, JAX {jax.__version__})"
    history["particles"] = list(particles)
    save(args.out, state, networks, step, history)
    print(f"done: {step} steps, {history['epochs']:.1f} epochs, {history['train_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
