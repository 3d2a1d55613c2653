"""Chapter 5's classifier plumbing on a tiny random GPT: batching, the last-token head, training
with early stopping, and classify() on awkward input."""
import pytest
import torch

from llmscratch.classify import (LABELS, LengthGroupedBatches, ReviewDataset, add_classification_head,
                                 classify, collate_reviews, confusion_matrix, encode_review,
                                 evaluate, freeze_except, last_token_logits, positive_probability,
                                 review_loader,
                                 train_classifier)
from llmscratch.model import GPTConfig, GPTModel
from llmscratch.tokenizer import load_course_encoding


@pytest.fixture(scope="module")
def encoding():
    return load_course_encoding()


def tiny_classifier(vocab_size, seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab_size, context_length=32, emb_dim=16, n_heads=2, n_layers=1,
                    drop_rate=0.0)
    return add_classification_head(GPTModel(cfg)).eval()


def toy_examples(n=48):
    words = [("great fun", 1), ("awful mess", 0), ("truly great film", 1), ("dull and awful", 0)]
    return [{"text": words[i % 4][0], "label": words[i % 4][1]} for i in range(n)]


def test_encode_truncates_from_the_left_and_rejects_empty_text(encoding):
    ids = encoding.encode_ordinary("one two three four five")
    assert encode_review("one two three four five", encoding, 3) == ids[-3:]
    for bad in ["", " ", "\n\t"]:
        with pytest.raises(ValueError, match="empty"):
            encode_review(bad, encoding, 3)
    with pytest.raises(TypeError):
        encode_review(None, encoding, 3)


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 1, 3, 9, 2, 2, 7, 4, 6, 8, 1]
    for shuffle in (False, True):
        batches = list(LengthGroupedBatches(lengths, batch_size=4, shuffle=shuffle, seed=3))
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert len(batches) == 3
    ordered = [i for b in LengthGroupedBatches(lengths, batch_size=4) for i in b]
    assert [lengths[i] for i in ordered] == sorted(lengths)


def test_padding_does_not_change_the_scores(encoding):
    model = tiny_classifier(encoding.n_vocab)
    data = ReviewDataset([{"text": t, "label": 0} for t in ["ok", "a much longer review here", "fine film"]],
                         encoding, 32)
    ids, lengths, _ = collate_reviews([data[i] for i in range(3)])
    with torch.no_grad():
        together = last_token_logits(model, ids, lengths)
        alone = torch.cat([last_token_logits(model, data[i][0][None], torch.tensor([len(data[i][0])]))
                           for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_training_learns_a_toy_task_and_early_stopping_restores_the_best(encoding):
    model = freeze_except(tiny_classifier(encoding.n_vocab), [""])
    train = ReviewDataset(toy_examples(), encoding, 32)
    loader = review_loader(train, batch_size=8, shuffle=True, seed=0)
    history = train_classifier(model, loader, train, epochs=30, lr=3e-3, eval_every=6, patience=3)
    assert len(history["val_acc"]) < 30  # stopped early
    assert evaluate(model, train)["accuracy"] == max(history["val_acc"]) == 1.0
    cm = confusion_matrix(train.labels, evaluate(model, train)["probabilities"].argmax(-1))
    assert cm.tolist() == [[24, 0], [0, 24]]
    assert classify("truly great film", model, encoding) == LABELS[1]
    long_text = " ".join(["dull and awful"] * 50)  # longer than the 32-token context
    tail = torch.tensor([encoding.encode_ordinary(long_text)[-32:]])
    with torch.no_grad():
        expected = last_token_logits(model, tail, torch.tensor([32])).softmax(-1)[0, 1].item()
    assert positive_probability(long_text, model, encoding) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        classify("", model, encoding)


def test_everything_frozen_is_an_error(encoding):
    model = freeze_except(tiny_classifier(encoding.n_vocab), [])
    train = ReviewDataset(toy_examples(8), encoding, 32)
    with pytest.raises(ValueError, match="frozen"):
        train_classifier(model, review_loader(train, 4), train)


def test_evaluate_returns_per_review_results_in_dataset_order(encoding):
    model = tiny_classifier(encoding.n_vocab, seed=1)
    texts = ["a much longer review than the others", "ok", "fine film", "bad"]
    data = ReviewDataset([{"text": t, "label": i % 2} for i, t in enumerate(texts)],
                         encoding, 32)
    result = evaluate(model, data, batch_size=2)  # batches come sorted by length
    with torch.no_grad():
        alone = torch.cat([last_token_logits(model, data[i][0][None], torch.tensor([len(data[i][0])]))
                           for i in range(len(data))])
    assert torch.allclose(result["probabilities"], alone.softmax(-1), atol=1e-5)
    assert result["correct"].tolist() == (alone.argmax(-1) == torch.tensor(data.labels)).tolist()
    assert result["accuracy"] == pytest.approx(result["correct"].float().mean().item())


def test_classifier_step_changes_only_trainable_weights(encoding):
    from llmscratch.classify import classifier_step

    model = freeze_except(tiny_classifier(encoding.n_vocab), ["out_head"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    data = ReviewDataset(toy_examples(8), encoding, 32)
    batch = collate_reviews([data[i] for i in range(8)])
    embedding = model.tok_emb.weight.clone()
    losses = [classifier_step(model, optimizer, params, batch) for _ in range(10)]
    assert losses[-1][0] < losses[0][0]
    assert all(0 <= right <= 8 for _, right in losses)
    assert torch.equal(model.tok_emb.weight, embedding)


def test_paired_comparison_sentences_read_from_the_better_side():
    from llmscratch.classify import describe_difference, paired_difference

    better, worse = [1] * 80 + [0] * 20, [1] * 50 + [0] * 50
    forward = describe_difference("A", "B", paired_difference(better, worse))
    backward = describe_difference("B", "A", paired_difference(worse, better))
    assert forward.startswith("A beats B by 30.0 points")
    assert backward == forward
    tied = paired_difference([1, 0] * 50, [0, 1] * 50)
    assert tied["tie"] and "tied" in describe_difference("A", "B", tied)


def tiny_llama(vocab_size, seed=0):
    from llmscratch.model import LlamaConfig, LlamaModel
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, context_length=64, emb_dim=24, n_heads=6,
                      n_kv_heads=2, n_layers=2, hidden_dim=48)
    return LlamaModel(cfg).eval()


def test_pooled_features_ignore_padding_and_keep_dataset_order(encoding):
    from llmscratch.classify import pooled_features
    model = tiny_llama(encoding.n_vocab)
    texts = ["a long and rather dull film about nothing much", "great", "bad film", "ok"]
    dataset = ReviewDataset([{"text": t, "label": 0} for t in texts], encoding, 64)
    batched = pooled_features(model, dataset, batch_size=4)  # padded to the longest
    for i, text in enumerate(texts):
        ids = torch.tensor([encoding.encode_ordinary(text)])
        with torch.inference_mode():
            hidden = model.features(ids)[0]
        assert torch.allclose(batched["mean"][i], hidden.mean(dim=0), atol=1e-5)
        assert torch.allclose(batched["last"][i], hidden[-1], atol=1e-5)
    assert batched["mean"].shape == batched["last"].shape == (4, 24)


def test_fit_probe_reaches_the_minimum_and_rejects_mismatched_labels():
    from llmscratch.classify import fit_probe, probe_objective
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(200) % 2
    features = torch.randn(200, 5, generator=generator) * 10
    features[:, 2] += 15 * labels
    features[:, 4] = 7.0  # a constant coordinate: standardising must not divide by zero
    probe = fit_probe(features, labels, l2=1e-2)
    loss = probe_objective(probe, features, labels, 1e-2)
    grads = torch.autograd.grad(loss, list(probe.head.parameters()))
    assert max(g.abs().max() for g in grads) < 1e-3
    with torch.no_grad():
        assert (probe(features).argmax(-1) == labels).float().mean() > 0.7
    with pytest.raises(ValueError, match="labels"):
        fit_probe(features, labels[:10], l2=1e-2)
