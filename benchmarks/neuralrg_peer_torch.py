"""Peer timing: one reverse-KL training step of the original NeuralRG (PyTorch).

Standalone: it does not import the zoo. It imports li012589/NeuralRG from a
checkout given by ``--checkout`` and builds the flow with NeuralRG's own
constructor, ``train.symmetryMERAInit`` (the one ``main.py`` uses): a MERA-like
hierarchy of RealNVP blocks acting on 2x2 plaquettes, Gaussian prior, for the
Hubbard-Stratonovich (continuous) Ising model ``source.Ising(L, 2, T)``.

What is timed (``--steps`` steps, after ``--warmup`` untimed ones), which is the
body of NeuralRG's ``train.learn`` loop:

    x, log_q = flow.sample(batch)                       # prior -> flow.inverse
    loss = (log_q - target.logProbability(x)).mean()    # = mean(log q + E)
    flow.zero_grad(); loss.backward(); optimizer.step() # Adam(lr, weight_decay)

With ``--symmetry`` the flow is wrapped in NeuralRG's ``Symmetrized`` (x -> -x),
and ``--alpha A`` adds ``A * (mean log q(x) - mean log q(-x))`` as in
``train.learnInterface``; ``--symmetry --alpha 1`` is the step run by the
README's L=16 command. Defaults (nlayers 10, nmlp 3, nhidden 10, nrepeat 1,
full depth, lr 1e-3, weight decay 1e-3) are the README's L=16 Ising values.

Prints one JSON line. Example (CPU torch in its own venv):

    /tmp/torchenv/bin/python benchmarks/neuralrg_peer_torch.py \\
        --checkout /tmp/nrg --commit ff4eb18f7f9e083dac6f3da3995f3f69ecf381e8 \\
        --L 16 --batch 64 --threads 2 --steps 20 --warmup 3
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import types


def install_shims():
    """Runtime stand-ins so the 2018 code imports with a modern torch.

    ``train/learn.py`` imports ``torchvision.utils.save_image`` (only used to
    write PNGs, which this script never does) and ``h5py`` (only used to save
    records). Stub them when they are not installed; nothing in the checkout
    is edited.
    """
    try:
        import torchvision.utils  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tvu = types.ModuleType("torchvision.utils")
        tvu.make_grid = tvu.save_image = lambda *a, **k: None
        tv.utils = tvu
        sys.modules["torchvision"], sys.modules["torchvision.utils"] = tv, tvu
    try:
        import h5py  # noqa: F401
    except ImportError:
        sys.modules["h5py"] = types.ModuleType("h5py")


def read_commit(checkout, fallback):
    if os.path.exists(os.path.join(checkout, ".git")):
        try:
            return subprocess.check_output(
                ["git", "-C", checkout, "rev-parse", "HEAD"], text=True,
                stderr=subprocess.DEVNULL).strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return fallback


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", required=True, help="NeuralRG source tree")
    p.add_argument("--commit", default=None, help="used if checkout has no .git")
    p.add_argument("--L", type=int, default=16)
    p.add_argument("--T", type=float, default=2.269185314213022)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--nlayers", type=int, default=10, help="couplings per RealNVP block")
    p.add_argument("--nmlp", type=int, default=3, help="hidden layers per s/t MLP")
    p.add_argument("--nhidden", type=int, default=10, help="width of the hidden layers")
    p.add_argument("--nrepeat", type=int, default=1, help="(disentangler, decimator) pairs per level")
    p.add_argument("--depth", type=int, default=-1, help="MERA levels; -1 = log2(L)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--symmetry", action="store_true", help="wrap in Symmetrized(x -> -x)")
    p.add_argument("--alpha", type=float, default=0.0, help="learnInterface symmetry penalty")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # main.py seeds 42 before the random masks
    install_shims()
    sys.path.insert(0, os.path.abspath(args.checkout))
    import source
    import train

    # NeuralRG prints during construction; keep stdout for the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        target = source.Ising(args.L, 2, args.T)
        sym = [lambda x: -x] if args.symmetry else None
        flow = train.symmetryMERAInit(
            args.L, 2, args.nlayers, args.nmlp, args.nhidden, args.nrepeat, sym,
            torch.device("cpu"), torch.float32, "peer",
            depthMERA=None if args.depth == -1 else args.depth)

    params = [q for q in flow.parameters() if q.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)

    def step():
        x, log_q = flow.sample(args.batch)
        loss = (log_q - target.logProbability(x)).mean()
        if args.alpha:
            loss = loss + args.alpha * (log_q.mean() - flow.logProbability(-x).mean())
        flow.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = (time.perf_counter() - t0) / args.steps

    print(json.dumps({
        "framework": "pytorch",
        "seconds_per_step": seconds,
        "steps": args.steps,
        "batch": args.batch,
        "threads": args.threads,
        "L": args.L,
        "commit": read_commit(args.checkout, args.commit),
        "parameters": int(sum(q.numel() for q in params)),
        "torch": torch.__version__,
        "config": {"nlayers": args.nlayers, "nmlp": args.nmlp, "nhidden": args.nhidden,
                   "nrepeat": args.nrepeat, "depth": args.depth, "T": args.T,
                   "lr": args.lr, "weight_decay": args.weight_decay,
                   "symmetry": args.symmetry, "alpha": args.alpha},
        "final_loss": loss,
    }))


if __name__ == "__main__":
    main()
