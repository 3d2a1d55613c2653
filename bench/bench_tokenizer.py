"""Chapter 1 benchmark: our pure-Python BPE against tiktoken (and HF tokenizers), measured in one run.

    .venv/bin/python bench/bench_tokenizer.py [--sample-chars 100000] [--sample-merges 100]
                                              [--encode-only]

Prints, side by side on the same text:
- encode speed on the whole course corpus: ours vs tiktoken, for GPT-2's ranks and the course
  vocabulary, twice: "cold" (our tokenizer starts with an empty piece cache, so filling it is part
  of the time) and "warm" (a second call on the same tokenizer, whose cache now knows every
  piece: the steady state of a tokenizer that encodes many texts); also the streaming encoder
  (`encode_iterable` over the corpus's lines, cold);
- training speed: our incremental trainer on the whole corpus vs the Rust BPE trainer of HF
  `tokenizers` (one thread, same 4,096-token target), and on a small sample our incremental and
  naive trainers vs the reference trainer in `tiktoken._educational` (which recounts every pair of
  every word occurrence after each merge, so only a sample is feasible).
Timings on a shared machine are noisy: compare the ratios, which come from one run. Encoding
is timed in CPU seconds of this process (both encoders use one thread), which a busy machine
disturbs less than wall time.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one thread, like our trainer

from llmscratch import tokenizer as T  # noqa: E402  (sets up the offline tiktoken cache)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def cpu_timed(function, *args, **kwargs):
    start = time.process_time()
    result = function(*args, **kwargs)
    return result, time.process_time() - start


def bench_encode(corpus: str) -> None:
    mb = len(corpus.encode("utf-8")) / 1e6
    lines = corpus.splitlines(keepends=True)
    print(f"\nencode the whole corpus ({mb:.2f} MB), CPU time")
    print(f"{'vocabulary':30s} {'ours MB/s':>10s} {'tiktoken MB/s':>14s} "
          f"{'ours / tiktoken':>16s}")
    for label, load, reference in [
        ("GPT-2 (50,257)", T.load_gpt2_tokenizer, T.gpt2_encoding()),
        ("course (4,096)", T.load_course_tokenizer, T.load_course_encoding()),
    ]:
        ref_ids, ref_s = cpu_timed(reference.encode, corpus, allowed_special="all")
        ours = load()
        rows = [("cold", cpu_timed(ours.encode, corpus, allowed_special="all")),
                ("warm", cpu_timed(ours.encode, corpus, allowed_special="all")),
                ("streamed, cold", cpu_timed(
                    lambda: list(load().encode_iterable(lines, allowed_special="all"))))]
        for kind, (ours_ids, ours_s) in rows:
            assert ours_ids == ref_ids, f"{label}, {kind}: ids differ from tiktoken's"
            print(f"{label + ', ' + kind:30s} {mb / ours_s:10.2f} {mb / ref_s:14.2f} "
                  f"{ref_s / ours_s:16.3f}")


def train_hf(documents: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[T.EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(documents, trainer=trainer)
    return tokenizer


def bench_train(corpus: str, documents: list[str], sample_chars: int, sample_merges: int) -> None:
    from tiktoken._educational import bpe_train

    print(f"\ntrain {T.COURSE_VOCAB_SIZE:,} tokens on the whole corpus")
    ours, ours_s = timed(T.BPETokenizer.train, corpus, T.COURSE_VOCAB_SIZE, (T.EOT,))
    hf, hf_s = timed(train_hf, documents, T.COURSE_VOCAB_SIZE)
    print(f"  ours (incremental, pure Python)  {ours_s:7.2f} s")
    print(f"  HF tokenizers (Rust, 1 thread)   {hf_s:7.2f} s   ours / HF time = {ours_s / hf_s:.1f}")
    assert ours.n_vocab == T.COURSE_VOCAB_SIZE and hf.get_vocab_size() == T.COURSE_VOCAB_SIZE

    sample = corpus[:sample_chars]
    n_tokens = 256 + sample_merges
    print(f"\ntrain {sample_merges} merges on the first {len(sample):,} characters")
    fast, fast_s = timed(T.train_bpe, sample, n_tokens, ())
    naive, naive_s = timed(T.train_bpe_naive, sample, n_tokens, ())
    reference, reference_s = timed(bpe_train, sample, n_tokens, T.GPT2_PATTERN, None)
    assert fast == naive
    print(f"  ours, incremental counts         {fast_s:7.3f} s")
    print(f"  ours, naive recount              {naive_s:7.3f} s   naive / incremental = {naive_s / fast_s:.1f}")
    print(f"  tiktoken._educational.bpe_train  {reference_s:7.3f} s   educational / incremental = "
          f"{reference_s / fast_s:.1f}")
    # Ties may be broken differently, so the two vocabularies need not be identical; report overlap.
    ours_tokens = set(T.ranks_from_merges(fast))
    print(f"  tokens shared with the educational trainer: {len(ours_tokens & set(reference))} of {n_tokens}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample-chars", type=int, default=100_000)
    parser.add_argument("--sample-merges", type=int, default=100)
    parser.add_argument("--encode-only", action="store_true",
                        help="skip the training benchmarks")
    args = parser.parse_args()
    documents = [text for _name, text in T.corpus_documents()]
    corpus = T.EOT.join(documents)
    print(f"corpus: {len(documents)} documents, {len(corpus):,} characters; cpus: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    bench_encode(corpus)
    if not args.encode_only:
        bench_train(corpus, documents, args.sample_chars, args.sample_merges)


if __name__ == "__main__":
    main()
