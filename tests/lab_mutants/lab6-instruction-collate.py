# Mutant of lab 6: padding is found by value (every target equal to pad_id is ignored) instead of
# by position. With pad_id 0 on small numbers it looks right; with pad_id = <|endoftext|> it also
# hides each answer's real end-of-text target, so the model would never learn to stop.
# replaces: solution_collate
# loses: collate_padding, collate_options
def collate(batch, pad_id, ignore_index=-100, mask_prompt=False, max_length=None, prompt_lengths=None):
    if mask_prompt and prompt_lengths is None:
        raise ValueError("mask_prompt=True needs prompt_lengths")
    if not batch or any(len(ids) < 2 for ids in batch):
        raise ValueError("every token list needs at least 2 tokens")
    if max_length is not None:
        batch = [ids[:max_length + 1] for ids in batch]
    width = max(len(ids) for ids in batch)
    padded = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch])
    inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()
    targets[targets == pad_id] = ignore_index  # the bug: by value
    if mask_prompt:
        for row, n in enumerate(prompt_lengths):
            targets[row, :n - 1] = ignore_index
    return inputs, targets
