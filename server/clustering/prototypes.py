"""Clustering at volume: prototypes per device-day, HDBSCAN on the prototypes, members by their
nearest prototype, and the same model for new songs between full runs.

HDBSCAN's cost grows much faster than linearly (scikit-learn builds the spanning tree in about
O(n^2)); a regional survey passes a million songs in weeks. Songs of one recorder on one day are
many repetitions of a few song types, so they summarise well:

1. group the (PCA-reduced) songs by device and UTC day of ``start_time``; k-means each group into
   one prototype per ``per_prototype`` songs (at least one per group), the prototype the mean of
   its songs, weighted by their number;
2. HDBSCAN on the prototypes (``min_cluster_size`` in songs becomes a minimum in prototypes,
   divided by the mean number of songs per prototype, at least 3);
3. every song takes the cluster of its **nearest prototype** (in a full run the nearest of its
   device-day's, which the k-means found; songs kept out of the fit and later songs search all
   prototypes in a cluster) when it is no farther from it than the cluster's outlier radius: ``median + outlier_mads * 1.4826 * MAD`` of the distances of the cluster's
   songs to their prototypes; farther songs, and songs whose nearest prototype is an HDBSCAN
   outlier, are outliers (``-1``). Membership strength = the prototype's HDBSCAN strength times
   ``1 - d / radius``;
4. :class:`PrototypeModel` (PCA, prototypes, their clusters, the radii) is stored with the run,
   so songs that arrive later are assigned by step 3 alone (:func:`assign`) until the next run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: the robust-z multiplier of the distance outlier rule
OUTLIER_MADS = 3.0
#: songs per prototype (k-means inside each device-day)
PER_PROTOTYPE = 40


@dataclass
class PrototypeModel:
    """What assigns a song to a cluster of a prototype run: the PCA (mean, components), the
    prototypes (in PCA space), their cluster and strength, and each cluster's outlier radius."""

    mean: np.ndarray  # (dim,)
    components: np.ndarray  # (k, dim)
    centres: np.ndarray  # (m, k)
    labels: np.ndarray  # (m,) int, -1 = HDBSCAN outlier
    strength: np.ndarray  # (m,)
    radius: np.ndarray  # (n_clusters,) outlier radius per cluster id

    def project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return ((x - self.mean) @ self.components.T).astype(np.float32)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> PrototypeModel:
        with np.load(io.BytesIO(blob)) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__})


def device_days(device_ids: list[str] | np.ndarray, start_times: np.ndarray) -> np.ndarray:
    """A group number per song: one per (device, UTC day of its start time)."""
    days = np.floor(np.asarray(start_times, np.float64) / 86400).astype(np.int64)
    keys = np.char.add(np.asarray(device_ids, dtype=str), np.char.mod("|%d", days))
    return np.unique(keys, return_inverse=True)[1]


def _kmeans(
    z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on a small group (k-means++ seeding): ``(centres, counts)``. In numpy: a
    library call per group costs more than the arithmetic, and a survey has thousands of groups."""
    sq = (z * z).sum(axis=1)
    centres = [z[rng.integers(len(z))]]
    d2 = ((z - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        centres.append(z[rng.choice(len(z), p=d2 / d2.sum())] if d2.sum() > 0 else z[rng.integers(len(z))])
        d2 = np.minimum(d2, ((z - centres[-1]) ** 2).sum(axis=1))
    c = np.array(centres)
    for _ in range(iters):
        lab = (sq[:, None] - 2 * z @ c.T + (c * c).sum(axis=1)[None, :]).argmin(axis=1)
        counts = np.bincount(lab, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, z)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
        if np.allclose(new, c):
            break
        c = new
    return c, (sq[:, None] - 2 * z @ c.T + (c * c).sum(axis=1)[None, :]).argmin(axis=1)


def summarise(z: np.ndarray, groups: np.ndarray, per_prototype: int = PER_PROTOTYPE,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Prototypes of each group by k-means inside it: ``(centres (m, k), weights (m,), owner (n,))``,
    ``owner`` the prototype of each song (the nearest of its group's)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    centres, owner, m = [], np.empty(len(z), np.int64), 0
    for part in np.split(order, bounds):
        zg = z[part].astype(np.float64)
        k = min(len(part), int(np.ceil(len(part) / per_prototype)))
        c, lab = (
            (zg.mean(axis=0, keepdims=True), np.zeros(len(part), np.int64)) if k == 1 else _kmeans(zg, k, rng)
        )
        used, lab = np.unique(lab, return_inverse=True)  # an emptied centre is dropped
        centres.append(c[used])
        owner[part] = m + lab
        m += len(used)
    return np.concatenate(centres).astype(np.float32), np.bincount(owner, minlength=m), owner


def _nearest(centres: np.ndarray, zq: np.ndarray, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1).fit(centres)
    d, idx = np.empty(len(zq), np.float32), np.empty(len(zq), np.int64)
    for i in range(0, len(zq), chunk):
        di, ii = nn.kneighbors(zq[i : i + chunk])
        d[i : i + chunk], idx[i : i + chunk] = di[:, 0], ii[:, 0]
    return d, idx


def assign(model: PrototypeModel, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster and strength of songs already in the model's PCA space (step 3)."""
    inside = np.flatnonzero(model.labels >= 0)
    if len(inside) == 0 or len(z) == 0:
        return np.full(len(z), -1, np.int64), np.zeros(len(z))
    d, j = _nearest(model.centres[inside], z)
    p = inside[j]
    lab = model.labels[p]
    r = model.radius[lab]
    ok = d <= r
    prob = np.where(ok, model.strength[p] * (1 - d / np.maximum(r, 1e-9)), 0.0)
    return np.where(ok, lab, -1).astype(np.int64), prob


def _radii(labels: np.ndarray, dist: np.ndarray, n_clusters: int, mads: float) -> np.ndarray:
    radius = np.zeros(n_clusters, np.float64)
    for c in range(n_clusters):
        d = dist[labels == c]
        if len(d):
            med = np.median(d)
            radius[c] = med + mads * 1.4826 * np.median(np.abs(d - med)) + 1e-6
    return radius


def fit_prototypes(z: np.ndarray, groups: np.ndarray, fit_idx: np.ndarray, min_cluster_size: int,
                   min_samples: int, selection: str, per_prototype: int = PER_PROTOTYPE, seed: int = 0,
                   outlier_mads: float = OUTLIER_MADS,
                   say: Callable[[str], None] = lambda s: None) -> tuple[np.ndarray, np.ndarray, PrototypeModel]:  # fmt: skip
    """Steps 1-3 on the songs ``fit_idx`` of ``z`` (PCA space); returns labels and strengths of
    every song of ``z`` and the model (its ``mean``/``components`` left empty for the caller).

    The songs summarised take the cluster of their own prototype (the nearest of their
    device-day's, found by the k-means: no search over all prototypes, linear in the songs);
    the songs it rejects, the other songs of ``z`` (kept out of the fit) and later songs search
    every prototype in a cluster (:func:`assign`)."""
    from sklearn.cluster import HDBSCAN

    centres, weights, owner = summarise(z[fit_idx], groups[fit_idx], per_prototype, seed)
    m = len(centres)
    mcs = max(3, int(np.ceil(min_cluster_size * m / max(len(fit_idx), 1))))  # songs -> prototypes
    say(f"HDBSCAN on {m} prototypes of {len(fit_idx)} songs (min cluster size {mcs} prototypes)")
    if m < mcs + 1:
        plab, pstr = np.full(m, -1), np.zeros(m)
    else:
        hdb = HDBSCAN(min_cluster_size=mcs, min_samples=min(min_samples, mcs), cluster_selection_method=selection,
                      copy=True).fit(centres)  # fmt: skip
        plab, pstr = hdb.labels_.astype(np.int64), hdb.probabilities_
    n_clusters = int(plab.max()) + 1 if m else 0
    say(f"{n_clusters} clusters; songs by their prototype, outlier radii")
    dist = np.sqrt(((z[fit_idx] - centres[owner]) ** 2).sum(axis=1))
    lab = plab[owner]
    model = PrototypeModel(np.zeros(0), np.zeros((0, 0)), centres, plab, pstr,
                           _radii(lab, dist, n_clusters, outlier_mads))  # fmt: skip
    labels, probs = np.full(len(z), -1, np.int64), np.zeros(len(z))
    r = model.radius[np.maximum(lab, 0)] if n_clusters else np.zeros(len(lab))
    ok = (lab >= 0) & (dist <= r)
    labels[fit_idx] = np.where(ok, lab, -1)
    probs[fit_idx] = np.where(ok, pstr[owner] * (1 - dist / np.maximum(r, 1e-9)), 0.0)
    # a second chance for songs their own prototype rejects (a minority dialect of a device-day is
    # blended into its prototypes): the nearest of all clustered prototypes
    rest = np.union1d(np.setdiff1d(np.arange(len(z)), fit_idx), fit_idx[~ok])
    if len(rest):
        labels[rest], probs[rest] = assign(model, z[rest])
    return labels, probs, model
