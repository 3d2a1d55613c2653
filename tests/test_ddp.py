"""Chapter 4's data-parallel training (llmscratch.train, section "Training on many devices"):
two gloo processes on 127.0.0.1 equal one process that accumulates gradients; tools/pretrain.py
under torchrun (one node and two "nodes" on this machine), a dying worker, exact resume, bad input.

Every launch uses a free port, has a time limit, and is killed with its whole process group
if it overruns.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmscratch import train as T
from llmscratch.model import GPTConfig, GPTModel

ROOT = Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=64, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.1,
                 qkv_bias=False, tie_weights=True)
RUN = T.TrainConfig(max_steps=5, batch_size=8, max_lr=3e-3, min_lr=3e-4, warmup_steps=2, stride=8,
                    eval_every=0, eval_windows=4)
LIMIT_S = 240  # per launch; a healthy one takes seconds (tens on a busy machine)


def token_ids(n=3000, seed=0):
    return torch.randint(0, TINY.vocab_size, (n,), generator=torch.Generator().manual_seed(seed))


# --- in-process: equality with one process, bad input ------------------------------------------

def test_two_processes_equal_one_process_accumulating():
    ids, val = token_ids(), token_ids(600, seed=1)
    torch.manual_seed(0)
    alone = GPTModel(TINY)
    history = T.train_data_parallel(alone, ids, val, RUN, accumulation=2, show_progress=False)
    ranks = T.run_on_processes(2, T.data_parallel_run, TINY, RUN, ids, val, 0, 1, timeout_s=LIMIT_S)

    reference = alone.state_dict()
    for result in ranks:
        worst = max((result["state"][k] - v).abs().max().item() for k, v in reference.items())
        assert worst <= 1e-6, f"rank {result['rank']} differs from one process by {worst}"
    # after every step, the two ranks held bit-identical weights
    assert len(ranks[0]["digests"]) == RUN.max_steps
    assert all(a == b for a, b in ranks[0]["digests"])
    # rank 0 logs the whole global batch's loss; rank 1 logs nothing
    losses = [row["train_loss"] for row in ranks[0]["history"]["train"]]
    assert losses == pytest.approx([row["train_loss"] for row in history["train"]], abs=1e-6)
    assert ranks[1]["history"]["train"] == []


def test_a_world_size_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(ValueError, match=r"\[1, 2, 4, 8\]"):
        T.check_split(8, 3)
    with pytest.raises(ValueError, match="does not split"):
        T.train_data_parallel(GPTModel(TINY), token_ids(), token_ids(600), RUN, accumulation=3)
    assert T.check_split(16, 2, accumulation=4) == 8


def test_shards_get_their_own_dropout_seeds():
    seeds = {T.shard_seed(123, step, shard) for step in range(50) for shard in range(8)}
    assert len(seeds) == 400


def test_init_without_torchrun_names_torchrun(monkeypatch):
    for name in T.TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(T.DistributedSetupError, match="torchrun"):
        T.init_distributed()


# --- tools/pretrain.py under torchrun ------------------------------------------------------------

def launch(args, env=None):
    """Start a command in its own process group (so a timeout can stop all of it)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
    return subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(process) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"the launch overran {LIMIT_S} s and was stopped:\n{out[-3000:]}")
    return process.returncode, out


def pretrain_args(folder, *extra):
    return ["tools/pretrain.py", "--tiny", "--max-steps", "6", "--work-dir", str(folder / "work"),
            "--out", str(folder / "out"), *extra]


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", *args]


def test_two_node_launch_equals_a_crashed_and_resumed_run(tmp_path):
    # two "nodes" of one process each: two torchrun launches that meet at 127.0.0.1
    port = str(T.free_port())
    nodes = [launch(torchrun("--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                             "--master_addr=127.0.0.1", f"--master_port={port}", "--rdzv-conf=timeout=60",
                             *pretrain_args(tmp_path / "nodes")))
             for rank in (0, 1)]
    results = [finish(node) for node in nodes]
    assert all(code == 0 for code, _ in results), results[0][1][-3000:] + results[1][1][-3000:]
    config = json.loads((tmp_path / "nodes" / "out" / "config.json").read_text())
    assert config["world_size"] == 2 and config["backend"] == "gloo"
    assert "world size 2" in (tmp_path / "nodes" / "out" / "MODEL_CARD.md").read_text()

    # one node, two processes; process 1 dies after step 3 without warning
    single = torchrun("--standalone", "--nproc_per_node=2", *pretrain_args(tmp_path / "one"))
    code, out = finish(launch(single + ["--crash-after-step", "3"]))
    assert code != 0 and "rerun the same command to resume" in out, out[-3000:]
    assert not (tmp_path / "one" / "out").exists()          # no release folder from a failed run
    T.verify_checksums(tmp_path / "one" / "work")            # the last checkpoint is complete
    stopped_at = json.loads((tmp_path / "one" / "work" / "config.json").read_text())["step"]
    assert 1 <= stopped_at <= 4

    code, out = finish(launch(single))  # the same command again resumes
    assert code == 0 and f"resuming from step {stopped_at}" in out, out[-3000:]
    a = load_file(tmp_path / "nodes" / "out" / "model.safetensors")
    b = load_file(tmp_path / "one" / "out" / "model.safetensors")
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst == 0.0, f"the resumed run differs from the uninterrupted one by {worst}"
    logs = [(tmp_path / run / "out" / "training_log.csv").read_text() for run in ("nodes", "one")]
    strip_times = [[line.split(",")[:5] for line in log.splitlines()] for log in logs]
    assert strip_times[0] == strip_times[1]   # same losses and gradient norms at every step


def test_a_missing_rendezvous_fails_clearly(tmp_path):
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(T.free_port())}  # rank 1 never comes
    code, out = finish(launch([sys.executable, *pretrain_args(tmp_path), "--rendezvous-timeout", "3"], env))
    assert code != 0 and "did not meet the other 1 process(es)" in out and "--master-port" in out, out
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_a_world_size_that_does_not_divide_the_batch_fails_before_training(tmp_path):
    code, out = finish(launch(torchrun("--standalone", "--nproc_per_node=3", *pretrain_args(tmp_path))))
    assert code != 0 and "does not split into 3 process(es)" in out and "--nproc_per_node" in out, out[-3000:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_a_lost_peer_is_told_from_a_bug():
    # inside backward, gloo reports a dead peer as a plain RuntimeError
    gone = RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:26012")
    assert T.lost_a_peer(gone)
    assert T.lost_a_peer(torch.distributed.DistError("timed out"))
    assert not T.lost_a_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
