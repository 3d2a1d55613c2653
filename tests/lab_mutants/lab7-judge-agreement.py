# Mutant of lab 7: kappa with chance agreement taken as 1 / (number of labels), as if both raters
# picked labels uniformly at random, instead of from the raters' own label frequencies.
# replaces: solution_kappa
# loses: judge_kappa
def cohens_kappa(a, b, labels=None) -> float:
    labels = sorted(set(a) | set(b)) if labels is None else labels
    observed = sum(x == y for x, y in zip(a, b)) / len(a)
    expected = 1 / len(labels)
    if expected == 1:
        return float("nan")
    return float((observed - expected) / (1 - expected))
