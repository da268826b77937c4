"""Multinomial logistic regression by L-BFGS, with its L2 penalty chosen on held-out rows.

The solver behind `linear_probe`: full-batch, deterministic NumPy, run to
convergence, so a probe has no epoch count to under- or over-train and each
feature set gets its own regularisation by the same rule. The label-efficiency
protocol uses it for every frozen-feature arm (learned, random, raw pixels).
"""

import math

import numpy as np

from simclr_tf import validation
from simclr_tf.evaluation.inputs import _check_labels, _check_num_classes


# L2 penalties (on the mean cross-entropy of standardised features) that
# `linear_probe(l2="auto")` chooses from, strongest first.
PROBE_L2_GRID = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def fit_logistic_probe(
    features, labels, num_classes=None, *, l2="auto", validation_fraction=0.2, max_iterations=150,
    seed=0,
):
    """Fits `linear_probe`'s L-BFGS classifier on training rows only.

    Features are standardised with these rows' mean and std; with
    `l2="auto"` the penalty is chosen from `PROBE_L2_GRID` on a
    class-stratified `validation_fraction` of these rows, then the
    classifier is refit on all of them. Nothing else is looked at, so a
    caller can fit first and touch test labels only to score.

    Args:
        features: (N, D) training features (image-shaped rows are flattened).
        labels: (N,) integer labels.
        num_classes: classes of the classifier; None infers them from the
            largest label.
        l2: "auto" or a penalty >= 0 on `l2 / 2 * ||W||^2`.
        validation_fraction: share of each class held out to choose `l2`.
        max_iterations: L-BFGS steps per fit.
        seed: seeds the held-out split.

    Returns:
        A dict: `mean`, `std`, `weights`, `bias` (give it to
        `logistic_logits`), `l2` (the penalty used), `train_top1` and, with
        `l2="auto"`, `validation_top1` (per grid value).

    Example:

    >>> x = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [1.2]] * 2)
    >>> probe = fit_logistic_probe(x, np.array([0, 0, 0, 1, 1, 1] * 2), l2=0.01)
    >>> logistic_logits(probe, np.array([[0.05], [1.15]])).argmax(1).tolist()
    [0, 1]
    """
    x = np.asarray(features)
    if x.ndim > 2:  # image-shaped features (raw pixels): one row per example
        x = x.reshape(len(x), -1)
    x = validation.check_features("features", x)
    y = _check_labels("labels", labels, len(x)).astype(np.int32)
    num_classes = _check_num_classes(num_classes, y)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / std
    params, info = _select_l2_and_fit(
        x, y, num_classes, l2, validation_fraction,
        validation.check_int("max_iterations", max_iterations, minimum=1), seed,
    )
    info.update(mean=mean, std=std, weights=params[0], bias=params[1],
                train_top1=_topk(_logits(x, params), y, 1))
    return info


def logistic_logits(probe, features):
    """Logits of a `fit_logistic_probe` result on (N, D) or image-shaped rows."""
    x = np.asarray(features, np.float32)
    if x.ndim > 2:
        x = x.reshape(len(x), -1)
    return _logits((x - probe["mean"]) / probe["std"], (probe["weights"], probe["bias"]))


def _select_l2_and_fit(xtr, ytr, num_classes, l2, validation_fraction, max_iterations, seed):
    """(W, b) and {"l2", maybe "validation_top1"} from standardised training rows."""
    info = {}
    if isinstance(l2, str):
        if l2 != "auto":
            raise ValueError(f"`l2` must be 'auto' or a number >= 0. Received: l2={l2!r}")
        validation_fraction = validation.check_fraction("validation_fraction", validation_fraction)
        fit_rows, val_rows = _stratified_holdout(ytr, validation_fraction, seed)
        if len(val_rows) == 0 or len(fit_rows) == 0:
            raise ValueError(
                "linear_probe(l2='auto') needs training rows on both sides of its validation "
                f"split. Received: {len(ytr)} rows, validation_fraction={validation_fraction}"
            )
        # Strongest penalty first; each fit starts from the previous optimum.
        params, scores = None, {}
        for value in PROBE_L2_GRID:
            params = _fit_logistic(xtr[fit_rows], ytr[fit_rows], num_classes, value,
                                   max_iterations, params)
            scores[value] = _topk(_logits(xtr[val_rows], params), ytr[val_rows], 1)
        best = max(scores.values())
        l2 = next(value for value in PROBE_L2_GRID if scores[value] == best)
        info["validation_top1"] = {f"{k:g}": v for k, v in scores.items()}
    else:
        try:
            value = float(l2)
        except (TypeError, ValueError):
            value = -1.0
        if isinstance(l2, bool) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"`l2` must be 'auto' or a finite number >= 0. Received: l2={l2!r}")
        l2 = value
    info["l2"] = l2
    return _fit_logistic(xtr, ytr, num_classes, l2, max_iterations), info


def _lbfgs_probe(xtr, ytr, xte, yte, num_classes, l2, validation_fraction, max_iterations, seed):
    params, result = _select_l2_and_fit(xtr, ytr, num_classes, l2, validation_fraction,
                                        max_iterations, seed)
    test_logits = _logits(xte, params)
    result.update({
        "top1": _topk(test_logits, yte, 1),
        "top5": _topk(test_logits, yte, 5),
        "train_top1": _topk(_logits(xtr, params), ytr, 1),
    })
    return result


def _stratified_holdout(labels, fraction, seed):
    """Row indices (fit, validation): `fraction` of each class, seeded."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(fraction * len(rows)))
        val.append(rows[:n])
        fit.append(rows[n:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _logits(x, params):
    weights, bias = params
    return x @ weights + bias


def _fit_logistic(x, y, num_classes, l2, max_iterations, init=None, memory=10, tol=1e-6):
    """Penalised multinomial logistic regression by L-BFGS; returns (W, b).

    Stops when the largest gradient entry is below `tol`, the loss stops
    falling (relative change < 1e-10) or after `max_iterations` steps.
    """
    n, d = x.shape
    onehot = np.zeros((n, num_classes), x.dtype)
    onehot[np.arange(n), y] = 1.0

    def objective(theta):
        weights, bias = theta[: d * num_classes].reshape(d, num_classes), theta[d * num_classes:]
        logits = x @ weights + bias
        logits -= logits.max(1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(1, keepdims=True))
        log_probs = logits - log_norm
        loss = -np.mean(np.sum(onehot * log_probs, 1)) + 0.5 * l2 * np.sum(weights * weights)
        delta = (np.exp(log_probs) - onehot) / n
        grad = np.concatenate([(x.T @ delta + l2 * weights).ravel(), delta.sum(0)])
        return loss, grad

    theta = (np.zeros(d * num_classes + num_classes, x.dtype) if init is None
             else np.concatenate([init[0].ravel(), init[1]]).astype(x.dtype))
    loss, grad = objective(theta)
    history = []
    for _ in range(max_iterations):
        if np.max(np.abs(grad)) < tol:
            break
        # Two-loop recursion for the quasi-Newton direction.
        q = grad.copy()
        alphas = []
        for s, t, rho in reversed(history):
            a = rho * (s @ q)
            alphas.append(a)
            q -= a * t
        if history:
            s, t, _ = history[-1]
            q *= (s @ t) / (t @ t)
        else:
            q /= max(1.0, np.linalg.norm(grad))
        for (s, t, rho), a in zip(history, reversed(alphas)):
            q += s * (a - rho * (t @ q))
        direction = -q
        slope = grad @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            history, direction, slope = [], -grad, -(grad @ grad)
        step = 1.0
        for _ in range(30):  # backtracking (Armijo)
            new_theta = theta + step * direction
            new_loss, new_grad = objective(new_theta)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, t = new_theta - theta, new_grad - grad
        if s @ t > 1e-12:
            history.append((s, t, 1.0 / (s @ t)))
            history = history[-memory:]
        converged = loss - new_loss < 1e-10 * max(1.0, abs(loss))
        theta, loss, grad = new_theta, new_loss, new_grad
        if converged:
            break
    return theta[: d * num_classes].reshape(d, num_classes), theta[d * num_classes:]


def _topk(logits, labels, k):
    labels = np.asarray(labels)
    if labels.shape != (len(logits),):  # guards the broadcast below: (N, 1) labels would match any row
        raise ValueError(f"labels must have shape ({len(logits)},). Received: labels.shape={labels.shape}")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _scores(logits, labels):
    labels = _check_labels("labels", labels, len(logits))
    return {"top1": _topk(logits, labels, 1), "top5": _topk(logits, labels, 5)}
