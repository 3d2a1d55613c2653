# Mutant of lab 4: the training step never clears the gradients, so every step adds its gradient
# to all the earlier ones. The first step is still right; the second is not.
# replaces: solution_train_step
# loses: train_step
def train_step(model, optimizer, inputs, targets, max_norm: float = 1.0) -> float:
    loss = lm_loss(model(inputs), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.item()
