"""Class-balanced, nested label subsets: `label_fraction_subset` and `nested_label_subsets`."""

import fractions
import math

import numpy as np

from simclr_tf import validation
from simclr_tf.evaluation.inputs import _check_labels


def label_fraction_subset(labels, fraction, seed=0):
    """Indices of a class-balanced subset holding `fraction` of each class.

    The rule: a class with n examples contributes
    max(1, floor(fraction * n + 1/2)) of them (round half up, at least one),
    computed exactly on the decimal value of `fraction` (so 0.35 of 10 is 4,
    not 3 from floating point). Within each class the examples are the first
    ones of a seeded random permutation; the permutation does not depend on
    `fraction`, so with one seed a smaller fraction's subset is contained in
    a larger one's (1% inside 10%), as in the SimCLR label splits.

    Args:
        labels: (N,) integer labels, >= 0.
        fraction: a number in (0, 1]; 1.0 returns every index.
        seed: permutation seed.

    Returns:
        Sorted int64 indices into `labels`.

    Raises:
        ValueError: naming the argument, for a fraction outside (0, 1]
            (0, negative, > 1, NaN, bool), or non-integer or negative labels.

    Example:

    >>> labels = np.repeat(np.arange(3), 100)
    >>> np.bincount(labels[label_fraction_subset(labels, 0.05)]).tolist()
    [5, 5, 5]
    """
    fraction = validation.check_fraction("fraction", fraction)
    labels = _check_labels("labels", labels)
    exact = fractions.Fraction(repr(fraction))
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = max(1, math.floor(exact * len(members) + fractions.Fraction(1, 2)))
        chosen.append(rng.permutation(members)[: min(count, len(members))])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def nested_label_subsets(labels, fractions=(0.01, 0.1, 1.0), seed=0):
    """Class-balanced label subsets, each contained in the next larger one.

    Each subset is `label_fraction_subset(labels, fraction, seed)`, so the
    sizes follow its rule: a class of n examples contributes
    max(1, floor(fraction * n + 1/2)) (round half up on the exact decimal
    value of `fraction`, at least one). One seeded permutation per class
    serves every fraction, which is what nests the subsets; another seed
    gives other subsets.

    Args:
        labels: (N,) integer labels, >= 0.
        fractions: numbers in (0, 1], distinct.
        seed: permutation seed.

    Returns:
        A dict from each fraction (as a float, in increasing order) to its
        sorted int64 indices into `labels`.

    Raises:
        ValueError: naming `fractions` when it is empty or repeats a value,
            and the checks of `label_fraction_subset`.

    Example:

    >>> labels = np.repeat(np.arange(2), 50)
    >>> subsets = nested_label_subsets(labels, (0.1, 0.5), seed=1)
    >>> [len(v) for v in subsets.values()], set(subsets[0.1]) <= set(subsets[0.5])
    ([10, 50], True)
    """
    return {f: label_fraction_subset(labels, f, seed=seed) for f in check_fractions(fractions)}


def check_fractions(fractions):
    """`fractions` as sorted floats in (0, 1], distinct and at least one.

    Raises:
        ValueError: naming `fractions` and the value received.

    >>> check_fractions((1, 0.1))
    [0.1, 1.0]
    """
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise ValueError(f"`fractions` must be a sequence of numbers in (0, 1]. Received: fractions={fractions!r}")
    values = [validation.check_fraction("fractions", f) for f in fractions]
    if not values or len(set(values)) != len(values):
        raise ValueError(
            f"`fractions` must hold at least one fraction and no repeats. Received: fractions={fractions!r}"
        )
    return sorted(values)
