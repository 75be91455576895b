"""One HDBSCAN fit: PCA, the quality filter, HDBSCAN on (a sample of) the fitted songs, assignment
of the rest, and 2-D/3-D map coordinates (see the package docstring for the steps)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from server.clustering.prototypes import PrototypeModel, fit_prototypes
from server.errors import ClusterError

log = logging.getLogger(__name__)

TSNE_MAX = 20_000
#: 2-D/3-D map methods: ``auto`` = a t-SNE 2-D map up to ``tsne_max`` songs with a PCA 3-D map,
#: PCA above; ``umap`` needs the umap-learn package
MAP_METHODS = ("auto", "pca", "tsne", "umap")
#: HDBSCAN's ``min_samples`` on songs (method "sample") when a run does not set it: chosen on the
#: independent generator's sets (docs/models.md, "Clustering: HDBSCAN's min_samples"); the
#: prototypes method keeps min(min_cluster_size, 10)
SAMPLE_MIN_SAMPLES = 3
#: the cluster id of songs kept out as incomplete (no terminal phrase): never a dialect cluster
INCOMPLETE_CLUSTER = -2


@dataclass(frozen=True)
class ClusterParams:
    """Parameters of one run (stored with it)."""

    min_cluster_size: int = 15
    min_samples: int | None = None
    reduce_dim: int = 12
    selection: str = "eom"
    max_fit: int = 20_000
    map_method: str = "pca"
    tsne_max: int = 10_000
    # the quality filter: which songs HDBSCAN is fitted on (see quality_exclusions)
    include_truncated: bool = False
    include_overlap: bool = False
    include_unrefined: bool = False
    include_incomplete: bool = False
    min_complete: float = 0.5
    min_duration_s: float = 1.2
    max_duration_s: float = 60.0
    excluded: str = "assign"
    seed: int = 0
    # "sample": HDBSCAN on up to max_fit songs, the rest by their nearest fitted neighbours;
    # "prototypes": HDBSCAN on prototypes of each device-day (see prototypes.py), for large runs
    method: str = "sample"
    per_prototype: int = 40

    def __post_init__(self):
        if self.min_cluster_size < 2:
            raise ClusterError("min_cluster_size must be >= 2")
        if self.excluded not in ("assign", "outlier"):
            raise ClusterError("excluded must be 'assign' or 'outlier'")
        if not 0 <= self.min_complete <= 1:
            raise ClusterError("min_complete must be between 0 and 1")
        if not 0 <= self.min_duration_s < self.max_duration_s:
            raise ClusterError("need 0 <= min duration < max duration")
        if self.selection not in ("eom", "leaf"):
            raise ClusterError("selection must be 'eom' or 'leaf'")
        if self.map_method not in MAP_METHODS:
            raise ClusterError(f"map method must be one of {', '.join(MAP_METHODS)}")
        if self.method not in ("sample", "prototypes"):
            raise ClusterError("method must be 'sample' or 'prototypes'")
        if self.per_prototype < 1:
            raise ClusterError("per_prototype must be >= 1")
        if self.reduce_dim < 0:
            raise ClusterError(f"reduce_dim must be >= 0 (0 = no PCA), got {self.reduce_dim}")
        if self.max_fit < 2:
            raise ClusterError(f"max_fit must be >= 2, got {self.max_fit}")
        if self.map_method == "umap" and importlib.util.find_spec("umap") is None:
            raise ClusterError("map method 'umap' needs the umap-learn package (pip install umap-learn)")


@dataclass
class ClusterResult:
    labels: np.ndarray  # (n,) int, -1 = outlier (or excluded and not assigned)
    probabilities: np.ndarray  # (n,) float in [0, 1]
    map2: np.ndarray  # (n, 2)
    map3: np.ndarray  # (n, 3)
    fitted: int  # points HDBSCAN saw (the rest were assigned)
    fitted_mask: np.ndarray | None = None  # (n,) bool, True for the points HDBSCAN saw
    model: PrototypeModel | None = None  # method "prototypes": assigns later songs (prototypes.assign)


def _pca(
    x: np.ndarray, k: int, seed: int, fit_rows: np.ndarray | None = None, model: list | None = None
) -> np.ndarray:
    """``x`` projected on its first ``k`` principal components (fitted on ``fit_rows`` only
    when given, so songs kept out of the fit do not shape the space); ``model`` (a list) gets
    the PCA's mean and components. Always ``k`` columns: when ``x`` has fewer dimensions (or
    ``fit_rows`` fewer songs), the missing components are zero."""
    from sklearn.decomposition import PCA

    src = x if fit_rows is None else x[fit_rows]
    fit_k = min(k, x.shape[1], src.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):  # identical songs: zero variance to divide by
        pca = PCA(n_components=fit_k, random_state=seed).fit(src)
    out = pca.transform(x)
    comps = np.pad(pca.components_, ((0, k - fit_k), (0, 0)))  # zero components project to zero
    if model is not None:
        model += [pca.mean_.astype(np.float32), comps.astype(np.float32)]
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])))
    return out.astype(np.float32)


def quality_exclusions(quality: dict[str, np.ndarray], params: ClusterParams) -> list[str | None]:
    """Why each song is kept out of the HDBSCAN fit (``None``: it passes the quality filter).

    Reasons, comma-joined when several apply: ``truncated`` (cut off at a stream boundary),
    ``overlap`` (cut out of overlapping songs: its bounds, and so its end-aligned encoder
    window, are estimates), ``unrefined`` (bounds from the detector windows alone), ``short`` /
    ``long`` (duration outside ``min_duration_s``..``max_duration_s``), ``incomplete`` (the
    encoder's complete probability below ``min_complete``: no terminal phrase, so no dialect; these
    songs are never assigned to a cluster either, see :data:`INCOMPLETE_CLUSTER`). All of them are
    what the device observed; an unknown duration or complete probability passes.
    """
    n = len(next(iter(quality.values()))) if quality else 0

    def col(name, default):
        v = quality.get(name)
        return np.full(n, default) if v is None else np.asarray(v)

    truncated = col("truncated", False).astype(bool)
    overlap = col("overlap", False).astype(bool)
    refined = col("refined", True).astype(bool)
    dur = col("duration_s", np.nan).astype(np.float64)
    complete = col("complete", np.nan).astype(np.float64)
    checks = [
        ("truncated", truncated & (not params.include_truncated)),
        ("overlap", overlap & (not params.include_overlap)),
        ("unrefined", ~refined & (not params.include_unrefined)),
        ("short", np.nan_to_num(dur, nan=np.inf) < params.min_duration_s),
        ("long", np.nan_to_num(dur, nan=-np.inf) > params.max_duration_s),
        (
            "incomplete",
            (np.nan_to_num(complete, nan=1.0) < params.min_complete) & (not params.include_incomplete),
        ),
    ]
    out: list[str | None] = []
    for i in range(n):
        why = [name for name, m in checks if m[i]]
        out.append(",".join(why) if why else None)
    return out


def _assign(zf: np.ndarray, fit_labels: np.ndarray, fit_probs: np.ndarray, zq: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Cluster of each query point: the cluster holding the majority of its ``k`` nearest
    fitted points (strength = their mean strength times the vote share), else ``-1``."""
    from sklearn.neighbors import NearestNeighbors

    m = zq.shape[0]
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    k = max(1, min(k, zf.shape[0]))
    idx = NearestNeighbors(n_neighbors=k).fit(zf).kneighbors(zq, return_distance=False)  # (m, k)
    lab = fit_labels[idx] + 1  # 0 = outlier
    votes = np.zeros((m, int(lab.max()) + 1), np.int64)
    np.add.at(votes, (np.repeat(np.arange(m), idx.shape[1]), lab.ravel()), 1)
    best = votes[:, 1:].argmax(axis=1) + 1 if votes.shape[1] > 1 else np.zeros(m, np.int64)
    share = votes[np.arange(m), best] / idx.shape[1]
    ok = (best > 0) & (share > 0.5)
    pk = np.where(lab == best[:, None], fit_probs[idx], 0.0).sum(axis=1) / idx.shape[1]
    return np.where(ok, best - 1, -1), np.where(ok, pk, 0.0)


def cluster_embeddings(
    x: np.ndarray,
    params: ClusterParams,
    progress: Callable[[str], None] | None = None,
    fit_mask: np.ndarray | None = None,
    incomplete_mask: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> ClusterResult:
    """Cluster ``(n, dim)`` embeddings of one encoder version.

    ``fit_mask`` (bool, ``(n,)``): the songs that passed the quality filter; only they shape
    the PCA and the HDBSCAN fit. The others are assigned to the cluster of their nearest fitted
    songs (``params.excluded == "assign"``) or left at ``-1`` (``"outlier"``).
    ``incomplete_mask`` (bool, ``(n,)``): songs without a terminal phrase; they must also be out
    of ``fit_mask``, and they get :data:`INCOMPLETE_CLUSTER`, never a dialect cluster.
    ``groups`` (int, ``(n,)``): the device-day of each song, for ``params.method == "prototypes"`` (without
    it, runs of ``per_prototype * 50`` consecutive songs stand in).
    """
    say = progress or (lambda s: None)
    n = x.shape[0]
    mask = np.ones(n, bool) if fit_mask is None else np.asarray(fit_mask, bool)
    pool = np.flatnonzero(mask)
    if len(pool) < max(params.min_cluster_size, 3):
        raise ClusterError(
            f"{len(pool)} embeddings are too few to cluster (min_cluster_size {params.min_cluster_size})"
            + (f"; {n - len(pool)} more were kept out by the quality filter" if len(pool) < n else "")
        )
    x = np.asarray(x, np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    reduce = params.reduce_dim and params.reduce_dim < x.shape[1]
    pca: list = []
    z = _pca(x, params.reduce_dim, params.seed, fit_rows=pool, model=pca) if reduce else x
    # HDBSCAN's min_samples and the neighbours that place the songs it was not fitted on: unless
    # given, SAMPLE_MIN_SAMPLES for HDBSCAN on songs and min(min_cluster_size, 10) neighbours
    assign_k = params.min_samples or min(params.min_cluster_size, 10)
    held = np.zeros(n, bool) if incomplete_mask is None else np.asarray(incomplete_mask, bool)
    if (held & mask).any():
        raise ClusterError("incomplete songs cannot be fitted")
    if params.method == "prototypes":
        res = _by_prototypes(x, z, pool, mask, groups, pca, params, assign_k, say)
        res.labels[held] = INCOMPLETE_CLUSTER  # never a dialect cluster, whatever they were assigned
        res.probabilities[held] = 0.0
        return res
    min_samples = params.min_samples or min(SAMPLE_MIN_SAMPLES, params.min_cluster_size)
    return _by_sample(z, pool, mask, held, params, min_samples, assign_k, say)


def _by_sample(
    z, pool, mask, held, params: ClusterParams, min_samples: int, assign_k: int, say
) -> ClusterResult:
    """HDBSCAN fitted on the quality-filtered songs (a sample of ``max_fit`` of them at most);
    the rest (and, with ``excluded == "assign"``, the filtered-out complete songs) assigned by
    their nearest fitted neighbours."""
    from sklearn.cluster import HDBSCAN

    n = len(z)
    rng = np.random.default_rng(params.seed)
    fit_idx = np.sort(rng.choice(pool, params.max_fit, replace=False)) if len(pool) > params.max_fit else pool
    say(f"HDBSCAN on {len(fit_idx)} of {n} points in {z.shape[1]} dimensions")
    hdb = HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=min_samples,
        cluster_selection_method=params.selection,
        copy=True,
    ).fit(z[fit_idx])
    labels = np.full(n, -1, np.int64)
    probs = np.zeros(n, np.float64)
    labels[fit_idx] = hdb.labels_
    probs[fit_idx] = hdb.probabilities_
    rest = np.setdiff1d(pool, fit_idx)
    if params.excluded == "assign":
        rest = np.union1d(rest, np.flatnonzero(~mask & ~held))
    if len(rest):
        say(f"assigning the other {len(rest)} points by their nearest fitted neighbours")
        labels[rest], probs[rest] = _assign(z[fit_idx], hdb.labels_, hdb.probabilities_, z[rest], assign_k)
    say("map coordinates")
    labels[held] = INCOMPLETE_CLUSTER
    probs[held] = 0.0
    map2, map3 = _maps(z, params)
    fitted = np.zeros(n, bool)
    fitted[fit_idx] = True
    return ClusterResult(labels, probs, map2, map3, len(fit_idx), fitted)


def _by_prototypes(x, z, pool, mask, groups, pca, params, min_samples, say) -> ClusterResult:
    n = len(z)
    groups = np.arange(n) // (params.per_prototype * 50) if groups is None else np.asarray(groups)
    labels, probs, model = fit_prototypes(z, groups, pool, params.min_cluster_size, min_samples, params.selection,
                                          params.per_prototype, params.seed, say=say)  # fmt: skip
    model.mean, model.components = (
        pca if pca else (np.zeros(x.shape[1], np.float32), np.eye(x.shape[1], dtype=np.float32))
    )
    if params.excluded == "outlier":
        labels[~mask], probs[~mask] = -1, 0.0
    say("map coordinates")
    map2, map3 = _maps(z, params)
    return ClusterResult(labels, probs, map2, map3, len(pool), mask.copy(), model)


#: below this spread (standard deviation along the widest principal axis of the L2-normalised
#: songs) the songs are one point to a map: t-SNE's PCA start divides by that spread (and crashes
#: the process on identical songs), so such maps are PCA's (all songs at the centre)
MIN_MAP_SPREAD = 1e-6


def _tsne(z: np.ndarray, dim: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    # t-SNE's OpenMP threads thrash on small shared machines; one thread is faster there
    with threadpool_limits(1):
        init = "pca" if z.shape[1] >= dim else "random"  # a PCA start needs as many dimensions as the map
        kw = dict(init=init, random_state=seed, perplexity=min(30.0, max(2.0, z.shape[0] / 4)))
        return TSNE(dim, **kw).fit_transform(z).astype(np.float32)


def _degenerate(p: np.ndarray) -> bool:
    """Whether the songs (their PCA map ``p``, widest axis first) are (nearly) one point."""
    return not np.isfinite(p).all() or float(np.std(p[:, 0])) < MIN_MAP_SPREAD


def _maps(z: np.ndarray, params: ClusterParams) -> tuple[np.ndarray, np.ndarray]:
    """2-D and 3-D map coordinates (always 2 and 3 columns, whatever the songs' dimension)."""
    n, method = z.shape[0], params.map_method
    p = _pca(z, 3, params.seed)
    if method != "pca" and _degenerate(p):
        log.warning("cluster: the %d songs are (nearly) identical; using PCA maps, not %s", n, method)
        return p[:, :2].copy(), p
    if method == "umap":
        import umap  # optional: checked in ClusterParams

        kw = dict(random_state=params.seed, n_neighbors=min(15, max(2, n - 1)))
        return (umap.UMAP(n_components=2, **kw).fit_transform(z).astype(np.float32),
                umap.UMAP(n_components=3, **kw).fit_transform(z).astype(np.float32))  # fmt: skip
    if method == "auto" and 5 <= n <= min(params.tsne_max, TSNE_MAX):
        return _tsne(z, 2, params.seed), p  # the 3-D map stays PCA: a 3-D t-SNE costs several times more
    if method == "tsne" and n <= TSNE_MAX:
        return _tsne(z, 2, params.seed), _tsne(z, 3, params.seed)
    if method == "tsne":
        log.warning("cluster: %d points are too many for t-SNE (max %d); using PCA maps", n, TSNE_MAX)
    return p[:, :2].copy(), p


# -- metrics against researcher labels -------------------------------------------------------------
