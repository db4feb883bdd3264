"""The Pythia 8 + FastJet jet generator: seeded chunks give the same jets however the work is
split (one process, local workers, Ray), an interrupted run resumes, and tau_21 is right on toy jets."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from training.simulators import jets  # noqa: E402

TINY = dict(n_jets=4, seed=5, chunk_events=12, quiet=True)


def generated(path, **options):
    return jets.read_jets(jets.generate(path, **{**TINY, **options}))


def assert_same_jets(a, b):
    for key in ("constituents", "label", "pt", "eta", "phi", "mass", "tau21", "chunk", "event"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return generated(tmp_path_factory.mktemp("serial") / "jets.h5", backend="serial")


def test_a_small_run_writes_selected_jets_of_both_classes(serial):
    assert list(serial["label"]) == [1] * 4 + [0] * 4
    assert np.all((serial["pt"] > 250) & (serial["pt"] < 300) & (np.abs(serial["eta"]) < 2))
    c = serial["constituents"]
    assert c.shape[1:] == (jets.MAX_CONSTITUENTS, 3) and np.all(c[..., 0] >= 0)
    assert np.all(np.abs(c[..., 2]) <= np.pi)
    # the constituents add up to the trimmed jet (massless approximation of each hadron aside)
    px = np.sum(c[..., 0] * np.cos(c[..., 2]), axis=1)
    py = np.sum(c[..., 0] * np.sin(c[..., 2]), axis=1)
    np.testing.assert_allclose(np.hypot(px, py), serial["pt"], rtol=1e-3)
    assert np.all((serial["tau21"] > 0) & (serial["tau21"] <= 1.0001))


def test_local_worker_processes_give_the_same_jets(serial, tmp_path):
    assert_same_jets(generated(tmp_path / "jets.h5", backend="processes", workers=2), serial)


def test_ray_tasks_give_the_same_jets(serial, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert_same_jets(generated(tmp_path / "jets.h5", backend="ray"), serial)
    finally:
        ray.shutdown()


def test_an_interrupted_run_keeps_its_chunks_and_resumes(serial, tmp_path, monkeypatch):
    out = tmp_path / "jets.h5"
    calls = []
    real = jets.generate_chunk

    def failing_after_two(*args):
        calls.append(args)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(jets, "generate_chunk", failing_after_two)
    with pytest.raises(KeyboardInterrupt):
        jets.generate(out, backend="serial", **TINY)
    assert not out.exists() and len(list((tmp_path / "jets.h5.parts").glob("*.h5"))) == 2
    monkeypatch.setattr(jets, "generate_chunk", real)
    resumed_chunks = []
    monkeypatch.setattr(jets, "generate_chunk", lambda *a: resumed_chunks.append(a[:2]) or real(*a))
    assert_same_jets(jets.read_jets(jets.generate(out, backend="serial", **TINY)), serial)
    assert ("w", 0) not in resumed_chunks and ("w", 1) not in resumed_chunks
    assert not (tmp_path / "jets.h5.parts").exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    parts = tmp_path / "jets.h5.parts"
    parts.mkdir()
    (parts / "run.json").write_text('{"seed": 99}')
    with pytest.raises(ValueError, match="other settings"):
        jets.generate(tmp_path / "jets.h5", backend="serial", **TINY)


def test_bad_arguments_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="positive number of jets"):
        jets.generate(tmp_path / "x.h5", 0, 1)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        jets.generate(tmp_path, 1, 1)
    with pytest.raises(ValueError, match="Unknown process"):
        jets.JetMaker("z", 1, jets.JetSelection())


def test_seeds_differ_between_chunks_and_processes():
    seeds = {jets.chunk_seed(1, p, c) for p in ("w", "qcd") for c in range(50)}
    assert len(seeds) == 100 and all(1 <= s <= jets.PYTHIA_MAX_SEED for s in seeds)


# ----------------------------------------------------------------------------- tau_N on toy jets

def test_n_subjettiness_by_hand():
    """Two equal prongs 0.4 apart: one axis in the middle gives tau_1 = (0.2 + 0.2) / 2 = 0.2 (R0 = 1);
    an axis on each prong gives tau_2 = 0, so a clean two-prong jet has tau_21 = 0."""
    jet = np.array([[100.0, 0.0, 0.0], [100.0, 0.4, 0.0], [0.0, 0.0, 0.0]])
    assert jets.n_subjettiness(jet, np.array([[200.0, 0.2, 0.0]])) == pytest.approx(0.2)
    assert jets.n_subjettiness(jet, np.array([[100.0, 0.0, 0.0], [100.0, 0.4, 0.0]])) == pytest.approx(0.0)


def test_n_subjettiness_weights_by_p_t_and_wraps_phi():
    """p_T 3 at Delta R 0.1 and p_T 1 at Delta R 0.3 across the phi seam: (0.3 + 0.3) / 4 = 0.15."""
    jet = np.array([[3.0, 0.0, np.pi - 0.05], [1.0, 0.0, -np.pi + 0.15]])
    axis = np.array([[4.0, 0.0, np.pi - 0.15]])
    assert jets.n_subjettiness(jet, axis) == pytest.approx((3 * 0.1 + 1 * 0.3) / 4)
    with pytest.raises(ValueError, match="empty jet"):
        jets.n_subjettiness(np.zeros((3, 3)), axis)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie no one has reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_a_worker_ends_when_its_parent_is_killed():
    """A SIGKILLed parent cannot shut its pool down; its worker notices the new parent id and exits."""
    parent = ("import os, signal, time\n"
              "from training.simulators import jets\n"
              "if __name__ == '__main__':\n"
              "    runner = jets.ProcessRunner(1)\n"
              "    pid = runner.pool.submit(os.getpid).result()\n"
              "    runner.pool.submit(time.sleep, 600)\n"
              "    print(pid, flush=True)\n"
              "    time.sleep(0.5)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[3])
    worker = int(done.stdout.split()[0])
    deadline = time.monotonic() + 60  # the worker polls once a second; the margin is for a loaded machine
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker), f"worker {worker} still runs after its parent was killed"
