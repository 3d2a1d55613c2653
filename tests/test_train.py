"""Chapter 4 (llmscratch.train): schedule, sampling filters, checkpoints, exact resume, load_pretrained."""
import math
import shutil

import pytest
import torch

from llmscratch import train as T
from llmscratch.model import GPTConfig, GPTModel

TINY = GPTConfig(vocab_size=64, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.1,
                 qkv_bias=False, tie_weights=True)
TINY_RUN = T.TrainConfig(max_steps=12, batch_size=4, max_lr=3e-3, min_lr=3e-4, warmup_steps=3,
                         stride=8, eval_every=4, eval_windows=4)


def token_ids(n=3000, seed=0):
    return torch.randint(0, TINY.vocab_size, (n,), generator=torch.Generator().manual_seed(seed))


def fresh(seed=1):
    torch.manual_seed(seed)
    model = GPTModel(TINY)
    return model, T.make_optimizer(model, TINY_RUN.max_lr)


# --- data --------------------------------------------------------------------------------------

def test_split_sends_every_tenth_chunk_to_validation():
    ids = torch.arange(100)
    train_ids, val_ids = T.train_val_split(ids, val_fraction=0.1, chunk_tokens=5)  # 20 chunks
    assert val_ids.tolist() == list(range(45, 50)) + list(range(95, 100))
    assert sorted(train_ids.tolist() + val_ids.tolist()) == list(range(100))


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        T.train_val_split(torch.arange(100), val_fraction=1.5)
    with pytest.raises(ValueError, match="chunk"):
        T.train_val_split(torch.arange(10), val_fraction=0.1, chunk_tokens=100)  # one chunk only


def test_replayable_batches_depend_only_on_the_step():
    a = T.ReplayableBatches(token_ids(), 16, 4, 8, seed=3)
    b = T.ReplayableBatches(token_ids(), 16, 4, 8, seed=3)
    for step in (0, 5, a.steps_per_epoch + 2):  # also inside the second epoch
        assert torch.equal(a(step)[0], b(step)[0])
    x, y = a(1)
    assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])


# --- loss and schedule ---------------------------------------------------------------------------

def test_untrained_loss_is_near_ln_vocab():
    model, _ = fresh()
    loader = T.eval_loader(token_ids(), 16, batch_size=4, max_windows=8)
    assert abs(T.evaluate_loss(model, loader) - math.log(TINY.vocab_size)) < 0.1
    assert model.training  # evaluate_loss restored the mode


def test_schedule_hand_values():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=14)
    assert [T.lr_at(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert T.lr_at(4, **kw) == 1.0
    assert math.isclose(T.lr_at(9, **kw), 0.55)                     # halfway down the cosine
    assert math.isclose(T.lr_at(6, **kw), 0.1 + 0.45 * (1 + math.cos(math.pi * 0.2)))
    assert T.lr_at(14, **kw) == T.lr_at(100, **kw) == 0.1


def test_optimizer_groups_cover_each_parameter_once():
    model, opt = fresh()
    decay, no_decay = (g["params"] for g in opt.param_groups)
    assert sum(p.numel() for p in decay + no_decay) == sum(p.numel() for p in model.parameters())
    assert all(p.dim() >= 2 for p in decay) and all(p.dim() == 1 for p in no_decay)
    assert opt.param_groups[1]["weight_decay"] == 0.0


# --- sampling ------------------------------------------------------------------------------------

LOGITS = torch.tensor([[1.0, 3.0, 2.0, 0.0, -1.0],
                       [0.0, 0.0, 5.0, 0.0, 0.0]])


def test_top_k_mask():
    kept = T.top_k_filter(LOGITS, 2).isfinite()
    assert kept.tolist() == [[False, True, True, False, False], [True, True, True, True, True]]  # ties kept
    assert torch.equal(T.top_k_filter(LOGITS, 10), LOGITS)
    with pytest.raises(ValueError):
        T.top_k_filter(LOGITS, 0)


def test_top_p_mask_hand_made():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()[[3, 0, 2, 1]]  # probs 0.05, 0.5, 0.15, 0.3
    kept = lambda p: T.top_p_filter(logits, p).isfinite().tolist()
    assert kept(0.49) == [False, True, False, False]
    assert kept(0.51) == [False, True, False, True]
    assert kept(0.9) == [False, True, True, True]
    assert kept(0.96) == [True, True, True, True]
    assert kept(1e-6) == [False, True, False, False]  # the top token always survives


def test_temperature_and_combined_distribution():
    probs = T.next_token_probs(LOGITS[0], temperature=0.5, top_k=3)
    expected = torch.zeros(5)
    expected[[1, 2, 0]] = torch.softmax(torch.tensor([6.0, 4.0, 2.0]), dim=0)
    assert torch.allclose(probs, expected)
    assert T.sample_next(LOGITS, temperature=0).flatten().tolist() == [1, 2]
    with pytest.raises(ValueError):
        T.next_token_probs(LOGITS, temperature=0)


def test_generate_greedy_and_eos():
    model, _ = fresh()
    prompt = torch.tensor([[1, 2, 3]])
    out = T.generate(model, prompt, 6, temperature=0)
    assert out.shape == (1, 9) and torch.equal(out[:, :3], prompt)
    first = int(out[0, 3])
    assert torch.equal(T.generate(model, prompt, 6, temperature=0, eos_id=first), out[:, :4])
    g = lambda: torch.Generator().manual_seed(5)
    assert torch.equal(T.generate(model, prompt, 6, top_p=0.9, generator=g()),
                       T.generate(model, prompt, 6, top_p=0.9, generator=g()))


def test_flops_formula():
    cfg = GPTConfig(vocab_size=10, context_length=8, emb_dim=4, n_heads=1, n_layers=2)
    assert T.training_flops_per_token(cfg) == 6 * (2 * 12 * 16 + 40) + 12 * 2 * 8 * 4


# --- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    model, opt = fresh()
    history = T.train(model, token_ids(), token_ids(600, seed=1), TINY_RUN, opt, show_progress=False)
    path = T.save_checkpoint(tmp_path / "run", model, opt, step=12, train_config=TINY_RUN, history=history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left
    state = T.load_checkpoint(path)
    assert state["step"] == 12 and state["config"]["train"]["max_steps"] == 12
    assert state["history"] == history  # floats read back exactly
    for (name, a), b in zip(model.state_dict().items(), state["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert state["model"].out_head.weight is state["model"].tok_emb.weight  # still tied


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    model, _ = fresh()
    path = T.save_checkpoint(tmp_path / "run", model, step=1)

    def crash(folder):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(T, "write_checksums", crash)
    other, _ = fresh(seed=2)
    with pytest.raises(KeyboardInterrupt):
        T.save_checkpoint(path, other, step=2)
    monkeypatch.undo()
    assert T.load_checkpoint(path)["step"] == 1  # the old checkpoint is intact
    T.save_checkpoint(path, other, step=2)      # and the next save cleans up the leftovers
    assert T.load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_resume_is_exact(tmp_path):
    train_ids, val_ids = token_ids(), token_ids(600, seed=1)
    model_a, opt_a = fresh()
    straight = T.train(model_a, train_ids, val_ids, TINY_RUN, opt_a, show_progress=False)

    model_b, opt_b = fresh()
    T.train(model_b, train_ids, val_ids, TINY_RUN, opt_b, stop_step=5, show_progress=False,
            checkpoint_dir=tmp_path / "run", checkpoint_every=5)
    torch.manual_seed(12345)  # disturb the random state; loading restores it
    model_c, opt_c = fresh(seed=99)
    state = T.load_checkpoint(tmp_path / "run", model_c, opt_c)
    assert state["step"] == 5
    resumed = T.train(model_c, train_ids, val_ids, TINY_RUN, opt_c, start_step=5, history=state["history"],
                      show_progress=False)
    strip = lambda h: [{k: v for k, v in row.items() if k != "time_s"} for row in h["train"]]
    assert strip(resumed) == strip(straight)
    assert resumed["eval"] == straight["eval"]
    for a, b in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(a, b)


def test_resume_needs_optimizer_state(tmp_path):
    model, opt = fresh()
    T.save_checkpoint(tmp_path / "weights-only", model, step=3)
    with pytest.raises(T.CheckpointError, match="optimizer"):
        T.load_checkpoint(tmp_path / "weights-only", *fresh())


def test_load_checkpoint_rejects_other_config(tmp_path):
    model, _ = fresh()
    T.save_checkpoint(tmp_path / "run", model)
    other = GPTModel(GPTConfig(**{**TINY.to_dict(), "n_layers": 1}))
    with pytest.raises(T.CheckpointError, match="config"):
        T.load_checkpoint(tmp_path / "run", other)


# --- load_pretrained -----------------------------------------------------------------------------

@pytest.fixture
def small_release(tmp_path):
    model, _ = fresh()
    return T.save_checkpoint(tmp_path / "course-gpt", model.eval(), step=0)


def test_load_pretrained_small_release(small_release):
    model, encoding = T.load_pretrained(small_release)
    assert model.cfg == TINY and not model.training and encoding.n_vocab == 4096


def test_load_pretrained_missing_folder(tmp_path):
    with pytest.raises(T.PretrainedCheckpointError, match="make pretrain"):
        T.load_pretrained(tmp_path / "nothing-here")


@pytest.mark.parametrize("victim", ["model.safetensors", "config.json", "course-bpe-4k.tiktoken"])
def test_load_pretrained_altered_file(small_release, victim):
    with open(small_release / victim, "ab") as handle:
        handle.write(b"\n")
    with pytest.raises(T.PretrainedCheckpointError, match="make pretrain") as info:
        T.load_pretrained(small_release)
    assert victim in str(info.value)


@pytest.mark.parametrize("victim", ["model.safetensors", "SHA256SUMS"])
def test_load_pretrained_missing_file(small_release, victim):
    (small_release / victim).unlink()
    with pytest.raises(T.PretrainedCheckpointError, match="make pretrain"):
        T.load_pretrained(small_release)


def test_shipped_checkpoint_loads_and_is_small():
    model, encoding = T.load_pretrained()
    assert model.cfg == T.COURSE_GPT_CONFIG
    size = sum(p.stat().st_size for p in T.PRETRAINED_DIR.iterdir())
    assert size <= 30 * 2**20
    assert {p.name for p in T.PRETRAINED_DIR.iterdir()} >= {
        "model.safetensors", "config.json", "course-bpe-4k.tiktoken", "training_log.csv", "MODEL_CARD.md", "SHA256SUMS"}
    ids = torch.tensor([encoding.encode("To be, or not to be")])
    assert T.generate(model, ids, 5, temperature=0).shape == (1, ids.shape[1] + 5)


# --- bits per byte -----------------------------------------------------------------------------

def test_bits_per_byte_hand_values():
    assert T.bits_per_byte(8 * math.log(2), 8) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive byte count"):
        T.bits_per_byte(1.0, 0)


def test_token_byte_lengths_match_decoded_bytes():
    from llmscratch.tokenizer import load_course_encoding

    encoding = load_course_encoding()
    lengths = T.token_byte_lengths(encoding)
    ids = encoding.encode("To be, or not to be: café, naïve")
    assert len(lengths) == encoding.n_vocab
    assert int(lengths[ids].sum()) == len("To be, or not to be: café, naïve".encode("utf-8"))


def test_uniform_model_scores_log2_vocab_per_token():
    model = GPTModel(GPTConfig(**{**TINY.to_dict(), "tie_weights": False}))
    torch.nn.init.zeros_(model.out_head.weight)  # every logit 0
    ids = token_ids(400)
    lengths = torch.randint(1, 5, (TINY.vocab_size,), generator=torch.Generator().manual_seed(3))
    loader = T.eval_loader(ids, TINY.context_length, batch_size=4)
    targets = torch.cat([y.flatten() for _, y in loader])
    expected = targets.numel() * math.log2(TINY.vocab_size) / int(lengths[targets].sum())
    assert T.evaluate_bits_per_byte(model, loader, lengths) == pytest.approx(expected, rel=1e-6)
