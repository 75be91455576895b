"""The song verifier's fit and its threshold: standardised logistic regression or a one-hidden-layer
MLP (bagged ones merged into one), out-of-fold scores with folds by recording, the figures per
candidate kind, the threshold rules, and a plain text table for the command's output.
Re-exported by :mod:`model_export.verifier`.
"""

from __future__ import annotations

import hashlib

import numpy as np


def fit(x: np.ndarray, y: np.ndarray, hidden: int = 0, c: float = 1.0, seed: int = 0, weight=None,
        bag: int = 1) -> dict:  # fmt: skip
    """Standardise, then logistic regression (``hidden`` 0) or a one-hidden-layer ReLU MLP;
    returns the manifest's ``mean``/``scale``/``layers``. ``bag`` > 1 MLPs (each on its own class-
    balanced resample, own seed) are merged into one wider MLP whose logit is their mean logit."""
    if hidden > 0 and bag > 1:
        parts = [fit(x, y, hidden, c, seed + 1000 * i, weight) for i in range(bag)]
        w1 = np.concatenate([m["layers"][0][0] for m in parts], axis=1)
        b1 = np.concatenate([m["layers"][0][1] for m in parts])
        w2 = np.concatenate([m["layers"][1][0] for m in parts], axis=0) / bag
        b2 = np.mean([m["layers"][1][1] for m in parts], axis=0)
        return {"mean": parts[0]["mean"], "scale": parts[0]["scale"], "layers": [(w1, b1), (w2, b2)]}
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    if hidden <= 0:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(z, y, sample_weight=weight)
        layers = [(lr.coef_.T.astype(np.float64), lr.intercept_.astype(np.float64))]
    else:
        from sklearn.neural_network import MLPClassifier

        # balance the classes by resampling (MLPClassifier takes no class weights)
        rng = np.random.default_rng(seed)
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        k = max(len(pos), len(neg))
        w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
        idx = np.concatenate(
            [rng.choice(pos, k, p=w[pos] / w[pos].sum()), rng.choice(neg, k, p=w[neg] / w[neg].sum())]
        )
        mlp = MLPClassifier((hidden,), alpha=1.0 / c, max_iter=600, early_stopping=False,
                            random_state=seed).fit(z[idx], y[idx])  # fmt: skip
        layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    return {"mean": mean, "scale": scale, "layers": layers}


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    h = (x - model["mean"]) / model["scale"]
    for i, (w, b) in enumerate(model["layers"]):
        h = h @ w + b
        if i < len(model["layers"]) - 1:
            h = np.maximum(h, 0.0)
    return 1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -60, 60)))


def group_folds(groups: np.ndarray, k: int = 5) -> np.ndarray:
    """Fold of every row by a hash of its recording (a recording never straddles folds)."""
    return np.array([int(hashlib.sha1(g.encode()).hexdigest()[:8], 16) % k for g in groups])


def weights(kind: np.ndarray, real_weight: float) -> np.ndarray:
    """Real (not composite) train songs count ``real_weight`` times: few, and the closest to the target."""
    return np.where(np.char.startswith(kind.astype(str), "real_pos") | np.isin(kind, ["clip_pos", "clip_pos_16k"]),
                    real_weight, 1.0)  # fmt: skip


def out_of_fold(x, y, groups, hidden, c, k=5, seed=0, weight=None, bag=1) -> np.ndarray:
    folds = group_folds(groups, k)
    p = np.zeros(len(y))
    for i in range(k):
        tr, te = folds != i, folds == i
        if te.any():
            p[te] = predict(
                fit(x[tr], y[tr], hidden, c, seed, None if weight is None else weight[tr], bag), x[te]
            )
    return p


def figures(p: np.ndarray, y: np.ndarray, kind: np.ndarray, hours: dict, thr: float) -> dict:
    """Recall per positive kind and false candidates per hour per negative kind at ``thr``."""
    out = {}
    for k in sorted(set(kind.tolist())):
        sel = kind == k
        if y[sel].max() > 0:
            out[f"recall_{k}"] = round(float(np.mean(p[sel] >= thr)), 3)
        else:
            h = hours.get(k, 0.0)
            out[f"false_per_h_{k}"] = round(float(np.sum(p[sel] >= thr)) / h, 2) if h else None
    return out


def threshold_for_recall(p, y, kind, recall: float = 0.9) -> float:
    """The highest threshold that keeps at least ``recall`` of the out-of-fold real train song
    candidates (hand-marked songs, native and through 16 kHz)."""
    s = np.sort(p[np.isin(kind, ["real_pos", "real_pos_16k"]) & (y == 1)])
    if not s.size:
        return 0.5
    missed = int(np.floor((1 - recall) * s.size + 1e-9))
    return round(float(s[missed]) - 1e-4, 4)


def choose_threshold(p, y, kind, hours, target_per_h: float = 1.0) -> float:
    """The lowest threshold whose out-of-fold false candidates per hour on the real other-species
    train audio (native and through 16 kHz together) is at most ``target_per_h``."""
    neg = np.isin(kind, ["real_neg", "real_neg_16k"])
    h = hours.get("real_neg", 0.0) + hours.get("real_neg_16k", 0.0)
    allowed = int(np.floor(target_per_h * h))
    s = np.sort(p[neg])[::-1]
    thr = float(s[allowed]) + 1e-4 if allowed < len(s) else 0.0
    return round(min(thr, 0.999), 4)


def table(rows: list[dict]) -> str:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["  ".join(f"{k:>14s}"[-14:] for k in keys)]
    for r in rows:
        lines.append("  ".join(f"{r.get(k, '')!s:>14s}"[-14:] for k in keys))
    return "\n".join(lines)
