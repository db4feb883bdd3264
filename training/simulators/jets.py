"""Boosted hadronic W jets against QCD jets at the LHC, with Pythia 8 and FastJet.

The sample of de Oliveira, Kagan, Mackey, Nachman & Schwartzman, "Jet-images —
deep learning edition", JHEP 07 (2016) 069, arXiv:1511.05190, at sqrt(s) = 13 TeV:

* signal: q qbar' -> Z W with Z -> nu nu (invisible) and W -> q qbar', so the
  one visible boosted object is the W, whose two quarks land within
  Delta R ~ 2 m_W / p_T ~ 0.6 of each other at p_T ~ 275 GeV;
* background: QCD 2 -> 2 (``HardQCD:all``), whose jets are mostly one hard parton.

Both with initial- and final-state showers, multiple parton interactions and
hadronisation (Pythia's defaults). Every visible final-state particle with
|eta| < 5 enters anti-kt clustering with R = 1.0; the hardest jet is trimmed
(kt subjets of R_sub = 0.2, kept when p_T,sub > f_cut p_T,jet with f_cut = 5 %)
and kept when 250 < p_T < 300 GeV and |eta| < 2 (optionally 65 < m < 95 GeV).
The hard process is generated with 230 < pT-hat < 330 GeV, a window wider than
the jet cut so that the selected jets are not shaped by it.

Work is split into chunks of ``chunk_events`` events, each seeded from
(seed, process, chunk index) alone, so the output is identical whether chunks
run in one process, on local worker processes or as Ray tasks, and however
they are spread. Each finished chunk is written to its own HDF5 part file
(written to a temporary name, then renamed), so an interrupted run keeps its
work and resumes; the final file holds the first ``n_jets`` jets in chunk order.

Units: GeV and radians. Simulators import neither the zoo nor TensorFlow.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from zoo.extras import import_extra

PROCESS_SETTINGS = {
    "w": ("WeakDoubleBoson:ffbar2ZW = on", "23:onMode = off", "23:onIfAny = 12 14 16",
          "24:onMode = off", "24:onIfAny = 1 2 3 4 5"),
    "qcd": ("HardQCD:all = on",),
}
LABELS = {"w": 1, "qcd": 0}
PROCESS_IDS = {"w": 24, "qcd": 21}
MAX_CONSTITUENTS = 128  # hardest constituents kept per trimmed jet (zero-padded); trimmed W jets carry ~40
PYTHIA_MAX_SEED = 900_000_000
CHUNK_EVENTS = 1000
FORMAT_VERSION = 1
JET_FIELDS = ("pt", "eta", "phi", "mass", "tau1", "tau2", "tau21")


@dataclasses.dataclass(frozen=True)
class JetSelection:
    """Jet definition and cuts (GeV); the defaults are the paper's."""

    radius: float = 1.0
    subjet_radius: float = 0.2
    trim_fraction: float = 0.05
    pt_min: float = 250.0
    pt_max: float = 300.0
    eta_max: float = 2.0
    mass_window: tuple | None = None  # (65.0, 95.0) for the paper's mass-window sample
    sqrt_s: float = 13000.0
    pt_hat_margin: tuple = (20.0, 30.0)  # pT-hat window = (pt_min - 20, pt_max + 30)

    def pythia_settings(self, process: str, seed: int) -> list:
        low, high = self.pt_min - self.pt_hat_margin[0], self.pt_max + self.pt_hat_margin[1]
        return [f"Beams:eCM = {self.sqrt_s}", *PROCESS_SETTINGS[process],
                f"PhaseSpace:pTHatMin = {low}", f"PhaseSpace:pTHatMax = {high}",
                "Random:setSeed = on", f"Random:seed = {seed}", "Next:numberCount = 0", "Print:quiet = on"]

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        record["mass_window"] = list(self.mass_window) if self.mass_window else None
        record["pt_hat_margin"] = list(self.pt_hat_margin)
        return record


def chunk_seed(seed: int, process: str, chunk: int) -> int:
    """Pythia's seed (1 .. 900,000,000) of one chunk, from (seed, process, chunk) alone."""
    state = np.random.SeedSequence([int(seed), PROCESS_IDS[process], int(chunk)]).generate_state(1)[0]
    return int(state) % PYTHIA_MAX_SEED + 1


# ---------------------------------------------------------------------------- physics of one jet

def n_subjettiness(constituents: np.ndarray, axes: np.ndarray, r0: float = 1.0) -> float:
    """tau_N = sum_k p_T,k min_j Delta R(k, axis_j) / (R0 sum_k p_T,k), beta = 1 (Thaler & Van Tilburg 2011).

    ``constituents`` (m, 3) and ``axes`` (N, 3) hold (p_T, eta, phi); zero-p_T rows are padding.
    Small tau_N: the radiation sits close to N axes, so tau_2 / tau_1 is small for a two-prong W."""
    pt = constituents[:, 0]
    keep = pt > 0
    if not keep.any():
        raise ValueError("n_subjettiness needs at least one constituent with p_T > 0; received an empty jet.")
    c = constituents[keep]
    d_eta = c[:, None, 1] - axes[None, :, 1]
    d_phi = np.angle(np.exp(1j * (c[:, None, 2] - axes[None, :, 2])))
    distance = np.sqrt(d_eta ** 2 + d_phi ** 2).min(axis=1)
    return float(np.sum(c[:, 0] * distance) / (r0 * np.sum(c[:, 0])))


def _as_rows(pseudojets) -> np.ndarray:
    """(p_T, eta, phi in (-pi, pi]) of FastJet pseudojets, hardest first."""
    rows = np.array([(j.pt(), j.eta(), j.phi_std()) for j in pseudojets], dtype=np.float64).reshape(-1, 3)
    return rows[np.argsort(-rows[:, 0], kind="stable")]


class JetMaker:
    """Pythia events of one process -> trimmed leading jets passing the cuts, with mass and tau_21."""

    def __init__(self, process: str, seed: int, selection: JetSelection):
        fastjet = import_extra("fastjet", "jets", "Generating jets (Pythia 8 events clustered with FastJet)")
        pythia8mc = import_extra("pythia8mc", "jets", "Generating jets (Pythia 8 events clustered with FastJet)")
        if process not in PROCESS_SETTINGS:
            raise ValueError(f"Unknown process {process!r}; expected one of {sorted(PROCESS_SETTINGS)}.")
        self.fastjet, self.selection = fastjet, selection
        self.pythia = pythia8mc.Pythia("", False)
        for setting in selection.pythia_settings(process, seed):
            if not self.pythia.readString(setting):
                raise RuntimeError(f"Pythia refused the setting {setting!r}.")
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process {process!r}.")
        self.jet_definition = fastjet.JetDefinition(fastjet.antikt_algorithm, selection.radius)
        self.axes_definition = fastjet.JetDefinition(fastjet.kt_algorithm, selection.radius)
        self.trimmer = fastjet.Filter(fastjet.JetDefinition(fastjet.kt_algorithm, selection.subjet_radius),
                                      fastjet.SelectorPtFractionMin(selection.trim_fraction))

    def visible_particles(self) -> list:
        event, make = self.pythia.event, self.fastjet.PseudoJet
        particles = []
        for i in range(event.size()):
            p = event[i]
            if p.isFinal() and p.isVisible() and abs(p.eta()) < 5.0:
                particles.append(make(p.px(), p.py(), p.pz(), p.e()))
        return particles

    def next_jet(self) -> dict | None:
        """One event; its trimmed leading jet as a record, or None when no jet passes the cuts."""
        if not self.pythia.next():
            return None
        sequence = self.fastjet.ClusterSequence(self.visible_particles(), self.jet_definition)
        jets = self.fastjet.sorted_by_pt(sequence.inclusive_jets(0.5 * self.selection.pt_min))
        if not jets:
            return None
        return self.jet_record(self.trimmer(jets[0]))

    def jet_record(self, jet) -> dict | None:
        s = self.selection
        if not (s.pt_min < jet.pt() < s.pt_max and abs(jet.eta()) < s.eta_max):
            return None
        if s.mass_window and not (s.mass_window[0] < jet.m() < s.mass_window[1]):
            return None
        constituents = _as_rows(jet.constituents())
        axes_sequence = self.fastjet.ClusterSequence(list(jet.constituents()), self.axes_definition)
        taus = [n_subjettiness(constituents, _as_rows(axes_sequence.exclusive_jets(min(n, len(constituents)))),
                               s.radius) for n in (1, 2)]
        padded = np.zeros((MAX_CONSTITUENTS, 3), np.float32)
        kept = constituents[:MAX_CONSTITUENTS]
        padded[:len(kept)] = kept
        return {"constituents": padded, "n_constituents": len(constituents), "pt": jet.pt(), "eta": jet.eta(),
                "phi": jet.phi_std(), "mass": jet.m(), "tau1": taus[0], "tau2": taus[1],
                "tau21": taus[1] / taus[0] if taus[0] > 0 else 0.0}


def generate_chunk(process: str, chunk: int, seed: int, selection: JetSelection,
                   events: int = CHUNK_EVENTS) -> dict:
    """All jets of one chunk: ``events`` Pythia events seeded by :func:`chunk_seed` (a Ray task or worker job)."""
    started = time.perf_counter()
    maker = JetMaker(process, chunk_seed(seed, process, chunk), selection)
    records = [(i, r) for i in range(events) if (r := maker.next_jet()) is not None]
    n = len(records)
    arrays = {
        "constituents": np.stack([r["constituents"] for _, r in records]) if n else
        np.zeros((0, MAX_CONSTITUENTS, 3), np.float32),
        "n_constituents": np.array([r["n_constituents"] for _, r in records], np.int32),
        "event": np.array([i for i, _ in records], np.int32),
        **{f: np.array([r[f] for _, r in records], np.float32) for f in JET_FIELDS},
    }
    arrays["label"] = np.full(n, LABELS[process], np.int8)
    arrays["chunk"] = np.full(n, chunk, np.int32)
    return {"process": process, "chunk": chunk, "events": events, "seconds": time.perf_counter() - started,
            "arrays": arrays}


# ---------------------------------------------------------------------------- files

def _write_h5_atomically(path: Path, arrays: dict, attributes: dict):
    import h5py

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value, compression="gzip" if value.ndim > 1 else None)
            for name, value in attributes.items():
                f.attrs[name] = value if not isinstance(value, (dict, list)) else json.dumps(value)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_jets(path) -> dict:
    """Arrays of a jets file (constituents, label, pt, eta, phi, mass, tau1, tau2, tau21, ...) and its ``attrs``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No jets file at {path}; make one with `python -m training.simulators.jets`.")
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f}
        data["attrs"] = {k: (json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v)
                         for k, v in f.attrs.items()}
    return data


class ChunkStore:
    """The part files of one run, ``<out>.parts/<process>-<chunk>.h5``, and the settings they were made with."""

    def __init__(self, out: Path, settings: dict):
        self._counts = {}  # (process, chunk) -> jets, of part files already read: a written part never changes
        self.folder = out.with_name(out.name + ".parts")
        self.folder.mkdir(parents=True, exist_ok=True)
        record = self.folder / "run.json"
        if record.exists():
            previous = json.loads(record.read_text())
            if previous != settings:
                raise ValueError(
                    f"{self.folder} holds chunks of a run with other settings ({previous}); this run asks for "
                    f"{settings}. Remove that folder or use the same settings to resume.")
        else:
            record.write_text(json.dumps(settings, sort_keys=True))

    def path(self, process: str, chunk: int) -> Path:
        return self.folder / f"{process}-{chunk:06d}.h5"

    def jets_in(self, process: str, chunk: int) -> int | None:
        import h5py

        key = (process, chunk)
        if key not in self._counts:
            path = self.path(process, chunk)
            if not path.exists():
                return None
            with h5py.File(path, "r") as f:
                self._counts[key] = int(f["label"].shape[0])
        return self._counts[key]

    def save(self, result: dict):
        _write_h5_atomically(self.path(result["process"], result["chunk"]), result["arrays"],
                             {"events": result["events"], "seconds": result["seconds"]})
        self._counts[(result["process"], result["chunk"])] = len(result["arrays"]["label"])

    def load(self, process: str, chunk: int) -> dict:
        data = read_jets(self.path(process, chunk))
        data.pop("attrs")
        return data


# ---------------------------------------------------------------------------- running chunks

class SerialRunner:
    """Chunks one after another in this process."""

    def run(self, tasks):
        for task in tasks:
            yield generate_chunk(*task)

    def close(self):
        pass


class ProcessRunner:
    """Chunks on local worker processes (spawned, so a parent holding TensorFlow is safe).

    A worker ends itself when its parent dies: a killed ``zoo evaluate`` or ``generate`` (SIGKILL, an
    out-of-memory kill) cannot shut its pool down, and a Pythia chunk would otherwise run on for minutes."""

    def __init__(self, workers: int):
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                        initializer=_start_worker, initargs=(os.getpid(),))

    def run(self, tasks):
        pending = {self.pool.submit(generate_chunk, *task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self):
        self.pool.shutdown(cancel_futures=True)


def _start_worker(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """A worker's file descriptor 1 goes to stderr: FastJet prints its banner to stdout once per process, and
    the caller's stdout (a report, a pipe) stays its own. A daemon thread exits the worker once its parent
    is gone (the parent id changes when the parent dies: the worker is re-parented)."""
    os.dup2(2, 1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid, poll_seconds), daemon=True,
                     name="exit-when-orphaned").start()


def _exit_when_orphaned(parent_pid: int, poll_seconds: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


class RayRunner:
    """Chunks as Ray tasks on the cluster ``ray.init(address)`` connects to (a local one when None)."""

    def __init__(self, address: str | None = None):
        ray = import_extra("ray", "ray", "Generating jets on a Ray cluster")
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.task = ray.remote(generate_chunk)

    def run(self, tasks):
        pending = [self.task.remote(*task) for task in tasks]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])

    def close(self):
        pass


def make_runner(backend: str, workers: int, ray_address: str | None = None):
    if backend == "serial" or (backend == "processes" and workers <= 1):
        return SerialRunner()
    if backend == "processes":
        return ProcessRunner(workers)
    if backend == "ray":
        return RayRunner(ray_address)
    raise ValueError(f"Unknown backend {backend!r}; expected 'serial', 'processes' or 'ray'.")


def _chunks_needed(store: ChunkStore, process: str, n_jets: int) -> tuple:
    """(jets in the consecutive finished chunks from 0, index of the first missing chunk)."""
    total, chunk = 0, 0
    while total < n_jets and (count := store.jets_in(process, chunk)) is not None:
        total, chunk = total + count, chunk + 1
    return total, chunk


def generate(out, n_jets: int, seed: int, selection: JetSelection = JetSelection(), processes=("w", "qcd"),
             backend: str = "processes", workers: int | None = None, chunk_events: int = CHUNK_EVENTS,
             ray_address: str | None = None, quiet: bool = False, keep_parts: bool = False,
             compact: bool = False) -> Path:
    """Write ``n_jets`` jets of each process to the HDF5 file ``out`` (resuming from its part files).

    ``compact`` drops the constituent slots no jet fills (small test fixtures). Worker
    processes are spawned: a script that calls this needs ``if __name__ == "__main__":``.
    Returns the path. Chunks run in waves of ``workers``; a wave beyond what turns out to be needed
    only leaves extra part files, never changes the output."""
    if int(n_jets) < 1:
        raise ValueError(f"n_jets must be a positive number of jets per process; received {n_jets}.")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; expected the path of an .h5 file to write.")
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = int(workers or os.cpu_count() or 1)
    settings = {"seed": int(seed), "chunk_events": int(chunk_events), "selection": selection.to_json(),
                "format": FORMAT_VERSION}
    store = ChunkStore(out, settings)
    runner = make_runner(backend, workers, ray_address)
    try:
        for process in processes:
            _fill(store, runner, process, n_jets, seed, selection, chunk_events, workers, quiet)
    finally:
        runner.close()
    _merge(store, out, processes, n_jets, settings, compact)
    if not keep_parts:
        shutil.rmtree(store.folder, ignore_errors=True)
    return out


def _fill(store, runner, process, n_jets, seed, selection, chunk_events, workers, quiet):
    from training.progress import Progress

    have, next_chunk = _chunks_needed(store, process, n_jets)
    progress = Progress(f"{process} jets", n_jets, "jets", done=min(have, n_jets), quiet=quiet)
    while have < n_jets:
        efficiency = max(have / max(next_chunk * chunk_events, 1), 0.05) if next_chunk else 0.3
        wanted = int(np.ceil((n_jets - have) / (efficiency * chunk_events)))
        wave = [c for c in range(next_chunk, next_chunk + max(workers, min(wanted, 4 * workers)))
                if store.jets_in(process, c) is None]
        for result in runner.run([(process, c, seed, selection, chunk_events) for c in wave]):
            store.save(result)
            progress.update(min(len(result["arrays"]["label"]), max(0, n_jets - progress.done)))
        have, next_chunk = _chunks_needed(store, process, n_jets)
    progress.close()


def _merge(store: ChunkStore, out: Path, processes, n_jets: int, settings: dict, compact: bool = False):
    pieces = []
    for process in processes:
        chunks = [store.load(process, chunk) for chunk in range(_chunks_needed(store, process, n_jets)[1])]
        pieces.append({k: np.concatenate([c[k] for c in chunks])[:n_jets] for k in chunks[0]})
    merged = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    if compact:  # drop the constituent slots that no jet fills
        merged["constituents"] = merged["constituents"][:, :max(1, int(merged["n_constituents"].max(initial=1)))]
    _write_h5_atomically(out, merged, {**settings, "processes": list(processes), "n_jets_per_process": n_jets,
                                       "pythia8mc": package_version("pythia8mc"),
                                       "fastjet": package_version("fastjet")})


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.simulators.jets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="HDF5 file to write (part files go to OUT.parts/)")
    parser.add_argument("--jets", type=int, required=True, help="jets per process")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--backend", choices=("serial", "processes", "ray"), default="processes")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local one)")
    parser.add_argument("--mass-window", action="store_true", help="keep only 65 < m < 95 GeV")
    parser.add_argument("--chunk-events", type=int, default=CHUNK_EVENTS)
    parser.add_argument("--compact", action="store_true", help="drop constituent slots that no jet fills")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    selection = JetSelection(mass_window=(65.0, 95.0) if args.mass_window else None)
    path = generate(args.out, args.jets, args.seed, selection, backend=args.backend, workers=args.workers,
                    chunk_events=args.chunk_events, ray_address=args.ray_address, quiet=args.quiet,
                    compact=args.compact)
    print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
