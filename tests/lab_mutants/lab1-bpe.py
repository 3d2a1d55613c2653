# Mutant of lab 1: train_bpe breaks ties between equally frequent pairs by taking the pair counted
# first (what max() does), not the smallest pair the task asks for. Everything else is right.
# replaces: solution_train_bpe
# loses: bpe_train
def train_bpe(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    if vocab_size < 256:
        raise ValueError("vocab_size must be at least 256")
    words = word_counts(text)
    merges = {}
    for new_id in range(256, vocab_size):
        pairs = count_pairs(words)
        if not pairs:
            break
        pair = max(pairs, key=pairs.get)  # ties: whichever pair was counted first
        merges[pair] = new_id
        words = {merge_pair(w, pair, new_id): n for w, n in words.items()}
    return merges
