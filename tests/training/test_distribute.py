"""tf.distribute: strategy choice, and two workers on 127.0.0.1 that match a single process."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.distribute import strategy_for

REPO = Path(__file__).resolve().parents[2]


def test_strategy_names():
    assert strategy_for("cpu").num_replicas_in_sync == 1
    assert strategy_for("auto").num_replicas_in_sync >= 1
    with pytest.raises(ValueError, match="must be one of"):
        strategy_for("gpu-please")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_worker(strategy, out, tf_config=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-m", "tests.training.multiworker_worker", strategy, str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_workers_end_identical_and_equal_to_one_process(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [run_worker("multiworker", tmp_path / f"w{i}.npz", {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    single = run_worker("cpu", tmp_path / "single.npz")
    for process in workers + [single]:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    w0, w1, one = (np.load(tmp_path / f) for f in ("w0.npz", "w1.npz", "single.npz"))
    assert int(w0["replicas"]) == 2 and int(one["replicas"]) == 1
    weights = [k for k in one.files if k.startswith("arr_")]
    for key in weights:
        np.testing.assert_array_equal(w0[key], w1[key])
        np.testing.assert_allclose(w0[key], one[key], atol=1e-5)
    np.testing.assert_allclose(w0["losses"], one["losses"], rtol=1e-5)
    assert not np.allclose(one["losses"][0], one["losses"][-1])  # it trained
