"""Training step of the zoo's NeuralRG flow against the original PyTorch NeuralRG, side by side on the same cores.

    python benchmarks/neuralrg_training.py --checkout PATH_TO_NEURALRG --torch-python /tmp/torchenv/bin/python \
        [--rounds 3] [--steps 30] [--batch 64] [--threads 2]

The peer is li012589/NeuralRG (Li & Wang, PRL 121, 260601 (2018)), pinned at commit
ff4eb18f7f9e083dac6f3da3995f3f69ecf381e8, run from a checkout of it by
``benchmarks/neuralrg_peer_torch.py`` with a CPU PyTorch in its own environment; none of
its code is in this repository. Both sides run the README configuration of NeuralRG's
L = 16 Ising result: the continuous Ising model at T_c, a hierarchy of RealNVP blocks on
2 x 2 plaquettes with 10 couplings each and perceptrons of 3 hidden layers of 10 ELU units,
Adam at 1e-3, reverse KL, batch and thread count as given. Each side runs in its own process
(thread pools set before the framework starts), in alternating rounds; a round times
``--steps`` steps after ``--warmup`` untimed ones (which include the graph / XLA compilation).

The zoo's own flow is smaller than the original: one network per coupling from the 2 frozen
sites to (s, t), where NeuralRG has separate s and t networks fed the masked 4-vector, and no
second (redundant) block on the single top plaquette (7 blocks against 8): 20,720 parameters
against 50,560. So a third side runs the zoo's flow with the original's structure
(``separate_networks``, ``top_disentangler``: 50,560 parameters, checked) and is the like-for-like
comparison; the three sides take turns, in rotating order. What still differs: NeuralRG's Adam
has weight decay 1e-3. The ratios are per training step.
Results: benchmarks/results/neuralrg_training.json and the card of neuralrg-ising-L16.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "neuralrg_training.json"
PEER_COMMIT = "ff4eb18f7f9e083dac6f3da3995f3f69ecf381e8"
T_CRITICAL = 2.269185314213022


def zoo_side(args) -> dict:
    """Time the zoo's train_step (Keras fit, graph mode) in this process; threads are set by the caller's env.
    With ``--original-structure`` the flow has NeuralRG's block structure and size."""
    import keras
    import numpy as np

    from zoo.models.flows import NeuralRGFlow

    keras.utils.set_random_seed(0)
    flow = NeuralRGFlow(L=args.L, action="hs_ising", couplings={"K": 1.0 / T_CRITICAL}, block_couplings=args.nlayers,
                        hidden=(args.nhidden,) * args.nmlp, activation="elu",
                        separate_networks=args.original_structure, top_disentangler=args.original_structure)
    flow.build_with_examples()
    flow.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.jit)
    ticks = np.zeros((args.batch, 1), np.float32)
    flow.fit(np.repeat(ticks, args.warmup, axis=0), batch_size=args.batch, epochs=1, verbose=0)
    start = time.perf_counter()
    history = flow.fit(np.repeat(ticks, args.steps, axis=0), batch_size=args.batch, epochs=1, verbose=0).history
    seconds = (time.perf_counter() - start) / args.steps
    framework = "keras-tensorflow, original structure" if args.original_structure else "keras-tensorflow"
    return {"framework": framework, "seconds_per_step": seconds, "parameters": int(flow.count_params()),
            "jit_compile": bool(flow.jit_compile), "final_loss": float(history["loss"][-1]),
            "keras": keras.__version__}


def run_side(command: list, threads: int) -> dict:
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", help="a checkout of li012589/NeuralRG (at the pinned commit)")
    parser.add_argument("--torch-python", default=sys.executable, help="a Python with CPU PyTorch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--nlayers", type=int, default=10)
    parser.add_argument("--nmlp", type=int, default=3)
    parser.add_argument("--nhidden", type=int, default=10)
    parser.add_argument("--no-jit", dest="jit", action="store_false", help="the zoo side without XLA")
    parser.add_argument("--zoo-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--original-structure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zoo_side:
        print(json.dumps(zoo_side(args)))
        return 0
    if not args.checkout:
        parser.error("--checkout PATH (a checkout of li012589/NeuralRG) is required")
    shared = ["--L", str(args.L), "--batch", str(args.batch), "--threads", str(args.threads), "--steps",
              str(args.steps), "--warmup", str(args.warmup)]
    architecture = ["--nlayers", str(args.nlayers), "--nmlp", str(args.nmlp), "--nhidden", str(args.nhidden)]
    here = Path(__file__).resolve().parent
    zoo_command = [sys.executable, str(here / "neuralrg_training.py"), "--zoo-side", *shared, *architecture,
                   *([] if args.jit else ["--no-jit"])]
    peer_command = [args.torch_python, str(here / "neuralrg_peer_torch.py"), "--checkout", args.checkout,
                    "--commit", PEER_COMMIT, *shared, *architecture]
    sides = [zoo_command, zoo_command + ["--original-structure"], peer_command]
    rounds = []
    for r in range(args.rounds):
        order = sides[r % 3:] + sides[:r % 3]
        results = [run_side(command, args.threads) for command in order]
        rounds.append({result["framework"]: result for result in results})
        print(json.dumps({k: v["seconds_per_step"] for k, v in rounds[-1].items()}), flush=True)
    median = lambda framework: statistics.median(r[framework]["seconds_per_step"] for r in rounds)
    zoo_time, like_time, peer_time = (median(f) for f in ("keras-tensorflow", "keras-tensorflow, original structure",
                                                          "pytorch"))
    like, peer = rounds[0]["keras-tensorflow, original structure"], rounds[0]["pytorch"]
    if like["parameters"] != peer["parameters"]:
        raise SystemExit(f"the original-structure flow has {like['parameters']} parameters, the peer "
                         f"{peer['parameters']}: not like for like")
    results = {"machine": f"{len(os.sched_getaffinity(0))} CPU cores", "threads": args.threads, "batch": args.batch,
               "L": args.L, "peer": "li012589/NeuralRG", "peer_commit": PEER_COMMIT, "rounds": rounds,
               "zoo_median_s_per_step": zoo_time, "zoo_original_structure_median_s_per_step": like_time,
               "peer_median_s_per_step": peer_time, "peer_over_zoo": peer_time / zoo_time,
               "peer_over_zoo_original_structure": peer_time / like_time}
    sys.path.insert(0, str(here))
    from common import record_preset_results, write_results

    write_results(RESULTS, results)
    record_preset_results("neuralrg-ising-L16", {
        "training step, zoo (s)": results["zoo_median_s_per_step"],
        "training step, PyTorch NeuralRG (s)": results["peer_median_s_per_step"],
        "PyTorch / zoo": results["peer_over_zoo"],
        "training step, zoo with the original's structure (s)": like_time,
        "PyTorch / zoo, like for like (50,560 parameters each)": results["peer_over_zoo_original_structure"],
        "training step, machine": f"{results['machine']}, {args.threads} threads, batch {args.batch}"},
        "benchmarks/neuralrg_training.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
