"""Dialect discovery: HDBSCAN per encoder version, map coordinates, metrics, novelty report.

Embeddings of different encoder versions live in different spaces and are never clustered
together: every run takes exactly one ``encoder_version``.

Pipeline of one run:

1. L2-normalise (again; cheap insurance), so Euclidean distance is a monotone function of the
   cosine distance the encoder was trained with;
2. PCA to ``reduce_dim`` components (HDBSCAN's density estimates degrade in high dimension, and
   the few dialect directions carry almost all the variance);
3. HDBSCAN (scikit-learn) -> cluster id (``-1`` = outlier) and membership strength
   (``probabilities_``). scikit-learn's HDBSCAN builds its spanning tree in O(n^2) time, so above
   ``max_fit`` points it is fitted on a seeded random sample and every other point takes the
   cluster that holds the majority of its ``min_samples`` nearest fitted neighbours (its
   membership strength = their mean strength times the vote share), or is an outlier when no
   cluster has a majority (its neighbourhood is mostly outliers or split);
4. 2-D and 3-D map coordinates: PCA (fast, deterministic, fine at 100k points), t-SNE (up to
   20k points; separates clusters that overlap in PCA), UMAP (where the umap-learn package is
   installed), or ``auto``: a t-SNE 2-D map up to ``tsne_max`` songs with a PCA 3-D map, PCA
   above (the CLI's default, ``[cluster] map`` in the server config).

A run is stored with its id, time, parameters, software version and metrics; members keep
cluster, probability and map coordinates.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edge import __version__

from .errors import ClusterError
from .storage import Storage

log = logging.getLogger(__name__)

TSNE_MAX = 20_000
MAP_METHODS = ("auto", "pca", "tsne", "umap")


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
    min_duration_s: float = 1.2
    max_duration_s: float = 60.0
    excluded: str = "assign"
    seed: int = 0

    def __post_init__(self):
        if self.min_cluster_size < 2:
            raise ClusterError("min_cluster_size must be >= 2")
        if self.excluded not in ("assign", "outlier"):
            raise ClusterError("excluded must be 'assign' or 'outlier'")
        if not 0 <= self.min_duration_s < self.max_duration_s:
            raise ClusterError("need 0 <= min duration < max duration")
        if self.selection not in ("eom", "leaf"):
            raise ClusterError("selection must be 'eom' or 'leaf'")
        if self.map_method not in MAP_METHODS:
            raise ClusterError(f"map method must be one of {', '.join(MAP_METHODS)}")
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


def _pca(x: np.ndarray, k: int, seed: int, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """``x`` projected on its first ``k`` principal components (fitted on ``fit_rows`` only
    when given, so songs kept out of the fit do not shape the space)."""
    from sklearn.decomposition import PCA

    src = x if fit_rows is None else x[fit_rows]
    k = min(k, x.shape[1], src.shape[0])
    out = PCA(n_components=k, random_state=seed).fit(src).transform(x)
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])))
    return out.astype(np.float32)


def quality_exclusions(quality: dict[str, np.ndarray], params: ClusterParams) -> list[str | None]:
    """Why each song is kept out of the HDBSCAN fit (``None``: it passes the quality filter).

    Reasons, comma-joined when several apply: ``truncated`` (cut off at a stream boundary),
    ``overlap`` (cut out of overlapping songs: its bounds, and so its end-aligned encoder
    window, are estimates), ``unrefined`` (bounds from the detector windows alone), ``short`` /
    ``long`` (duration outside ``min_duration_s``..``max_duration_s``). All of them are what the
    device observed; an unknown duration passes.
    """
    n = len(next(iter(quality.values()))) if quality else 0

    def col(name, default):
        v = quality.get(name)
        return np.full(n, default) if v is None else np.asarray(v)

    truncated = col("truncated", False).astype(bool)
    overlap = col("overlap", False).astype(bool)
    refined = col("refined", True).astype(bool)
    dur = col("duration_s", np.nan).astype(np.float64)
    checks = [
        ("truncated", truncated & (not params.include_truncated)),
        ("overlap", overlap & (not params.include_overlap)),
        ("unrefined", ~refined & (not params.include_unrefined)),
        ("short", np.nan_to_num(dur, nan=np.inf) < params.min_duration_s),
        ("long", np.nan_to_num(dur, nan=-np.inf) > params.max_duration_s),
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
) -> ClusterResult:
    """Cluster ``(n, dim)`` embeddings of one encoder version.

    ``fit_mask`` (bool, ``(n,)``): the songs that passed the quality filter; only they shape
    the PCA and the HDBSCAN fit. The others are assigned to the cluster of their nearest fitted
    songs (``params.excluded == "assign"``) or left at ``-1`` (``"outlier"``).
    """
    from sklearn.cluster import HDBSCAN

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
    z = _pca(x, params.reduce_dim, params.seed, fit_rows=pool) if reduce else x
    min_samples = params.min_samples or min(params.min_cluster_size, 10)
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
        rest = np.union1d(rest, np.flatnonzero(~mask))
    if len(rest):
        say(f"assigning the other {len(rest)} points by their nearest fitted neighbours")
        labels[rest], probs[rest] = _assign(z[fit_idx], hdb.labels_, hdb.probabilities_, z[rest], min_samples)
    say("map coordinates")
    map2, map3 = _maps(z, params)
    fitted = np.zeros(n, bool)
    fitted[fit_idx] = True
    return ClusterResult(labels, probs, map2, map3, len(fit_idx), fitted)


def _tsne(z: np.ndarray, dim: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    # t-SNE's OpenMP threads thrash on small shared machines; one thread is faster there
    with threadpool_limits(1):
        kw = dict(init="pca", random_state=seed, perplexity=min(30.0, max(2.0, z.shape[0] / 4)))
        return TSNE(dim, **kw).fit_transform(z).astype(np.float32)


def _maps(z: np.ndarray, params: ClusterParams) -> tuple[np.ndarray, np.ndarray]:
    n, method = z.shape[0], params.map_method
    p = _pca(z, 3, params.seed)
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
def evaluate(ids: list[str], labels: np.ndarray, truth: dict[str, str]) -> dict:
    """ARI, NMI (outliers counted as one extra "cluster") and per-cluster purity, on labelled points."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    pairs = [(truth[i], int(c)) for i, c in zip(ids, labels, strict=True) if i in truth]
    if not pairs:
        return {}
    y_true = [p[0] for p in pairs]
    y_pred = [p[1] for p in pairs]
    clustered = [(t, c) for t, c in pairs if c >= 0]
    out = {
        "labelled_points": len(pairs),
        "ari": round(float(adjusted_rand_score(y_true, y_pred)), 4),
        "nmi": round(float(normalized_mutual_info_score(y_true, y_pred)), 4),
        "outlier_fraction": round(1 - len(clustered) / len(pairs), 4),
    }
    if clustered:
        out["ari_clustered"] = round(float(adjusted_rand_score(*zip(*clustered, strict=True))), 4)
    by_cluster: dict[int, Counter] = defaultdict(Counter)
    for t, c in pairs:
        by_cluster[c][t] += 1
    purity = {}
    for c, cnt in sorted(by_cluster.items()):
        label, k = cnt.most_common(1)[0]
        purity[str(c)] = {
            "majority": label,
            "purity": round(k / sum(cnt.values()), 4),
            "labelled": sum(cnt.values()),
        }
    out["purity"] = purity
    total = sum(v["labelled"] for c, v in purity.items() if c != "-1")
    if total:
        out["mean_purity"] = round(
            sum(v["purity"] * v["labelled"] for c, v in purity.items() if c != "-1") / total, 4
        )
    return out


def coverage(excluded: list[str | None], labels: np.ndarray) -> dict:
    """How many songs the run covers: passed the quality filter, clustered (a cluster id >= 0,
    fitted or assigned), and the excluded ones by reason and whether they were assigned."""
    n = len(excluded)
    passed = np.array([e is None for e in excluded], bool)
    clustered = labels >= 0
    reasons: Counter = Counter()
    for e in excluded:
        for r in (e or "").split(","):
            if r:
                reasons[r] += 1
    frac = (lambda k: round(k / n, 4)) if n else (lambda k: 0.0)
    return {
        "songs": n,
        "passed_filter": int(passed.sum()),
        "passed_fraction": frac(int(passed.sum())),
        "clustered": int(clustered.sum()),
        "clustered_fraction": frac(int(clustered.sum())),
        "clustered_passed": int((clustered & passed).sum()),
        "excluded": int((~passed).sum()),
        "excluded_assigned": int((clustered & ~passed).sum()),
        "excluded_reasons": dict(reasons.most_common()),
    }


# -- a stored run ---------------------------------------------------------------------------------
def run_clustering(storage: Storage, encoder_version: str | None, params: ClusterParams,
                   progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Cluster one encoder version (the only one, or the one with most detections, when None),
    store the run and return its summary with metrics and the novelty report."""
    versions = {e["encoder_version"]: e["detections"] for e in storage.encoder_summary()}
    if not versions:
        raise ClusterError("no detections in the database yet")
    if encoder_version is None:
        encoder_version = max(versions, key=versions.get)
        if len(versions) > 1:
            log.info("cluster: several encoder versions present; clustering %s (pass --encoder for another)",
                     encoder_version)  # fmt: skip
    elif encoder_version not in versions:
        raise ClusterError(f"unknown encoder version {encoder_version!r} (known: {', '.join(versions)})")
    ids, x, quality = storage.load_points(encoder_version)
    excluded = quality_exclusions(quality, params)
    passed = np.array([e is None for e in excluded], bool)
    t0 = time.perf_counter()
    res = cluster_embeddings(x, params, progress, fit_mask=passed)
    elapsed = time.perf_counter() - t0
    truth = storage.labels()
    # headline metrics: over the songs that passed the quality filter (what HDBSCAN clustered)
    metrics = evaluate([i for i, ok in zip(ids, passed, strict=True) if ok], res.labels[passed], truth)
    metrics["seconds"] = round(elapsed, 3)
    metrics["fitted_points"] = res.fitted
    metrics["coverage"] = coverage(excluded, res.labels)
    if not passed.all():  # and over every song of the encoder version, the excluded ones included
        metrics["all_songs"] = {k: v for k, v in evaluate(ids, res.labels, truth).items() if k != "purity"}
    created = time.time()
    run_id = time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime(created)) + "-" + uuid.uuid4().hex[:6]
    n_clusters = int(len(set(res.labels.tolist()) - {-1}))
    run = {
        "run_id": run_id,
        "encoder_version": encoder_version,
        "created_at": created,
        "params": json.dumps(asdict(params)),
        "n_points": len(ids),
        "n_clusters": n_clusters,
        "n_outliers": int((res.labels < 0).sum()),
        "metrics": json.dumps(metrics),
        "software": f"yellowhammer {__version__}",
    }
    members = [
        {"run_id": run_id, "detection_id": i, "cluster": int(c), "probability": round(float(p), 5),
         "x2": float(a[0]), "y2": float(a[1]), "x3": float(b[0]), "y3": float(b[1]), "z3": float(b[2]),
         "fitted": int(f), "excluded": e}
        for i, c, p, a, b, f, e in zip(ids, res.labels, res.probabilities, res.map2, res.map3, res.fitted_mask,
                                       excluded, strict=True)
    ]  # fmt: skip
    storage.save_cluster_run(run, members)
    log.info("cluster: run %s on %s: %d points, %d clusters, %d outliers in %.1f s", run_id, encoder_version,
             len(ids), n_clusters, run["n_outliers"], elapsed)  # fmt: skip
    summary = {**run, "params": asdict(params), "metrics": metrics}
    summary["novelty"] = novelty_report(storage, run_id)
    return summary


def _members_by_cluster(rows: list[dict]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        out[r["cluster"]].add(r["detection_id"])
    return out


def compare_runs(prev_rows: list[dict], cur_rows: list[dict]) -> dict:
    """How clusters changed: each current cluster matched to the previous cluster it shares most
    members with (over detections present in both runs)."""
    prev = _members_by_cluster(prev_rows)
    cur = _members_by_cluster(cur_rows)
    universe = {r["detection_id"] for r in prev_rows}
    owner_prev = {r["detection_id"]: r["cluster"] for r in prev_rows}
    matches = []
    best_of: dict[int, list[int]] = defaultdict(list)
    for c, members in sorted(cur.items()):
        if c < 0:
            continue
        shared = members & universe
        entry = {"cluster": c, "size": len(members), "new_members": len(members - universe)}
        if not shared:
            entry.update(status="new", matched=None, jaccard=0.0, note="only detections that arrived since")
        else:
            votes = Counter(owner_prev[i] for i in shared)
            p, k = votes.most_common(1)[0]
            if p < 0:
                entry.update(status="new", matched=None, jaccard=0.0,
                             note=f"{k} of its earlier members were outliers in the previous run")  # fmt: skip
            else:
                prev_members = prev[p]
                cur_shared = members & universe
                jac = len(cur_shared & prev_members) / len(cur_shared | prev_members)
                entry.update(status="stable" if jac >= 0.5 else "changed", matched=p, jaccard=round(jac, 4))
                best_of[p].append(c)
        matches.append(entry)
    for p, cs in best_of.items():
        if len(cs) > 1:
            for e in matches:
                if e["cluster"] in cs:
                    e["status"] = "split"
                    e["note"] = f"previous cluster {p} split into {sorted(cs)}"
    cur_owner = {r["detection_id"]: r["cluster"] for r in cur_rows}
    vanished = []
    for p, members in sorted(prev.items()):
        if p < 0 or p in best_of:
            continue
        votes = Counter(cur_owner.get(i, -2) for i in members)
        c, k = votes.most_common(1)[0]
        if c >= 0:
            vanished.append(
                {"previous_cluster": p, "status": "merged", "into": c, "share": round(k / len(members), 4)}
            )
        else:
            vanished.append({"previous_cluster": p, "status": "dissolved", "size": len(members)})
    return {"clusters": matches, "previous_clusters_gone": vanished}


#: a cluster holding far fewer labelled songs than the run's labelled share would give it by
#: chance (one-sided binomial probability below this) is a candidate new dialect too
NOVELTY_P = 1e-3
#: known clusters are bisected at most this many times over when looking for an absorbed dialect
_MAX_SPLIT_DEPTH = 3


def _under_labelled(k: int, n: int, rate: float) -> float | None:
    """Binomial probability of ``k`` or fewer labelled songs among ``n`` at the run's labelled
    share ``rate``, when that share is at most half the run's and the probability is below
    ``NOVELTY_P`` (else None: labelled as expected)."""
    from scipy.stats import binom

    p = float(binom.cdf(k, n, rate)) if rate > 0 else 1.0
    return p if k / n <= rate / 2 and p < NOVELTY_P else None


def _fitted_and_rate(rows: list[dict], truth: dict[str, str]) -> tuple[list[dict], float]:
    """A run's songs that were fitted into a cluster, and the share of them that is labelled."""
    passed = [r for r in rows if not r.get("excluded") and r["cluster"] >= 0]
    return passed, (sum(r["detection_id"] in truth for r in passed) / len(passed) if passed else 0.0)


def _novel_clusters(rows: list[dict], truth: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Split a run's clusters into candidate new dialects and known ones.

    Counted over the songs that passed the quality filter (songs assigned afterwards may sit in
    a cluster by accident). A cluster is a candidate when it holds no labelled song, or when it
    is *under-labelled*: its labelled share is at most half the run's and a binomial test says
    so few labelled songs would turn up by chance with probability below ``NOVELTY_P`` (a known
    dialect's cluster gets labelled songs at about the run's rate; a new dialect gets only the
    few labelled songs of other dialects that stray into it).
    """
    passed, rate = _fitted_and_rate(rows, truth)
    sizes = Counter(r["cluster"] for r in rows if r["cluster"] >= 0)
    candidates, known = [], []
    for c, members in sorted(_members_by_cluster(passed).items()):
        labs = Counter(truth[i] for i in members if i in truth)
        k, n = sum(labs.values()), len(members)
        entry = {"cluster": c, "size": sizes[c], "songs_fitted": n, "labels": dict(labs),
                 "labelled_share": round(k / n, 4)}  # fmt: skip
        if k == 0:
            entry["why"] = "no labelled songs"
            candidates.append(entry)
            continue
        p = _under_labelled(k, n, rate)
        if p is not None:
            entry["why"] = (f"under-labelled: {k} of {n} songs labelled against {100 * rate:.0f} % in the run "
                            f"(binomial p = {p:.1e})")  # fmt: skip
            entry["p_value"] = p
            candidates.append(entry)
        else:
            known.append(entry)
    return candidates, known


_BISECT_MAX = 3000  # Ward linkage on at most this many songs (memory grows with the square)


def _bisect(z: np.ndarray, extra: np.ndarray) -> tuple[list[int], list[int]]:
    """Split embeddings ``z`` in two by Ward linkage, on an evenly spaced sample of at most
    ``_BISECT_MAX`` rows; the other rows of ``z`` and the rows of ``extra`` join the part whose
    mean is nearer. Returns the parts (0 or 1) of ``z`` and of ``extra``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    step = max(1, -(-len(z) // _BISECT_MAX))
    sample = z[::step]
    lab = fcluster(linkage(sample.astype(np.float64), "ward"), 2, "maxclust") - 1
    centres = np.stack([sample[lab == q].mean(axis=0) for q in (0, 1)])

    def nearer(rows: np.ndarray) -> list[int]:
        if not len(rows):
            return []
        return np.argmin(((rows[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1).tolist()

    return (lab.tolist() if step == 1 else nearer(z)), nearer(extra)


def _hidden_subgroups(rows: list[dict], truth: dict[str, str], known: list[dict], ids: list[str],
                      x: np.ndarray, min_size: int) -> list[dict]:  # fmt: skip
    """Under-labelled halves of known clusters: a new dialect absorbed by a known one.

    An encoder that never heard a dialect tends to map it next to the nearest known one, so
    HDBSCAN may give both one cluster, with enough labelled songs of the known dialect that the
    cluster as a whole looks known. Each known cluster of at least ``2 * min_size`` fitted songs
    is therefore split in two (Ward linkage on the embeddings, :func:`_bisect`), and each
    part again, up to ``_MAX_SPLIT_DEPTH`` levels; a part of at least ``min_size`` songs that is under-labelled by
    the rule of :func:`_novel_clusters`, against the run's labelled share, is a candidate (and
    is not split further). Splitting a cluster of one dialect gives parts that are all labelled
    at about the run's share, and is not reported.
    """
    passed, rate = _fitted_and_rate(rows, truth)
    if not passed:
        return []
    index = {i: j for j, i in enumerate(ids)}
    fitted = _members_by_cluster(passed)
    everyone = _members_by_cluster([r for r in rows if r["cluster"] >= 0])
    out = []
    for entry in known:
        c = entry["cluster"]
        # in load_points' order (start time): the same songs give the same split, whatever their ids
        members = sorted((i for i in fitted[c] if i in index), key=index.__getitem__)
        if len(members) < 2 * min_size:
            continue
        assigned = sorted((i for i in everyone[c] - fitted[c] if i in index), key=index.__getitem__)
        # bisect: a part that is not under-labelled but big enough is split again
        todo = [("", members, assigned)]
        while todo:
            path, fit_ids, other_ids = todo.pop(0)
            if len(fit_ids) < 2 * min_size or len(path) >= _MAX_SPLIT_DEPTH:
                continue
            # the songs assigned to the cluster after the fit go to the nearer part
            fit_part, other_part = _bisect(x[[index[i] for i in fit_ids]], x[[index[i] for i in other_ids]])
            for q in (0, 1):
                sub = [i for i, v in zip(fit_ids, fit_part, strict=True) if v == q]
                sub_other = [i for i, v in zip(other_ids, other_part, strict=True) if v == q]
                n = len(sub)
                labs = Counter(truth[i] for i in sub if i in truth)
                k = sum(labs.values())
                p = _under_labelled(k, n, rate) if n >= min_size else None
                if p is None:
                    todo.append((path + str(q), sub, sub_other))
                    continue
                out.append({
                    "cluster": c, "subgroup": path + str(q), "size": n + len(sub_other),
                    "songs_fitted": n, "labels": dict(labs), "labelled_share": round(k / n, 4), "p_value": p,
                    "why": (f"under-labelled part of cluster {c}: {k} of {n} songs labelled against "
                            f"{100 * rate:.0f} % in the run (binomial p = {p:.1e})"),
                    "detection_ids": sorted(sub + sub_other),
                })  # fmt: skip
    return out


def novelty_report(storage: Storage, run_id: str | None = None, encoder_version: str | None = None) -> dict:
    """Clusters with none of the labelled songs (candidate new dialects) and changes since the
    previous run of the same encoder version."""
    runs = storage.cluster_runs(encoder_version)
    if not runs:
        raise ClusterError("no cluster runs yet (run `yh-server cluster`)")
    if run_id is None:
        run = runs[-1]
    else:
        match = [r for r in runs if r["run_id"] == run_id]
        if not match:
            raise ClusterError(f"no cluster run {run_id!r}")
        run = match[0]
    same_version = [
        r for r in storage.cluster_runs(run["encoder_version"]) if r["created_at"] < run["created_at"]
    ]
    rows = storage.run_members(run["run_id"])
    truth = storage.labels()
    labelled_any = any(i in truth for i in (r["detection_id"] for r in rows))
    candidates, known = _novel_clusters(rows, truth)
    if labelled_any and known:
        ids, x, _ = storage.load_points(run["encoder_version"])
        params = run["params"] if isinstance(run["params"], dict) else json.loads(run["params"] or "{}")
        min_size = int(params.get("min_cluster_size", ClusterParams.min_cluster_size))
        candidates += _hidden_subgroups(rows, truth, known, ids, x, min_size)
    report = {
        "run_id": run["run_id"],
        "encoder_version": run["encoder_version"],
        "created_at": run["created_at"],
        "n_clusters": run["n_clusters"],
        "n_outliers": run["n_outliers"],
        "labels_present": labelled_any,
        "candidate_new_dialects": sorted(candidates, key=lambda e: -e["size"]),
        "known_clusters": known,
        "previous_run": same_version[-1]["run_id"] if same_version else None,
    }
    if not labelled_any:
        report["note"] = "no labelled songs among this run's detections: every cluster is a candidate"
    if same_version:
        report["changes"] = compare_runs(storage.run_members(same_version[-1]["run_id"]), rows)
    return report


def format_report(summary: dict) -> str:
    """Human-readable text of a cluster summary / novelty report."""
    lines = []
    if "n_points" in summary:
        m = summary.get("metrics", {})
        lines.append(f"run {summary['run_id']} ({summary['encoder_version']}): {summary['n_points']} points, "
                     f"{summary['n_clusters']} clusters, {summary['n_outliers']} outliers, {m.get('seconds', 0):.1f} s")  # fmt: skip
        cov = m.get("coverage")
        if cov:
            reasons = ", ".join(f"{k} {v}" for k, v in cov["excluded_reasons"].items()) or "none"
            how = "assigned to the nearest cluster" if summary.get("params", {}).get("excluded", "assign") == "assign" \
                else "left unclustered"  # fmt: skip
            lines.append(f"  quality filter: {cov['passed_filter']} of {cov['songs']} songs fitted "
                         f"({100 * cov['passed_fraction']:.1f} %); kept out: {reasons} ({how}: "
                         f"{cov['excluded_assigned']} of {cov['excluded']} got a cluster)")  # fmt: skip
            lines.append(f"  coverage: {cov['clustered']} of {cov['songs']} songs in a cluster "
                         f"({100 * cov['clustered_fraction']:.1f} %)")  # fmt: skip
        if "ari" in m:
            lines.append(f"  songs that passed the filter, against {m['labelled_points']} labelled: ARI {m['ari']:.3f}, "
                         f"NMI {m['nmi']:.3f}, ARI without outliers {m.get('ari_clustered', float('nan')):.3f}, "
                         f"outliers {100 * m['outlier_fraction']:.1f} %, mean purity {m.get('mean_purity', 0):.3f}")  # fmt: skip
            a = m.get("all_songs")
            if a and "ari" in a:
                lines.append(f"  all songs, against {a['labelled_points']} labelled: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}, "
                             f"ARI without outliers {a.get('ari_clustered', float('nan')):.3f}, "
                             f"unclustered {100 * a['outlier_fraction']:.1f} %")  # fmt: skip
            for c, p in m["purity"].items():
                lines.append(
                    f"    cluster {c:>4}: {p['majority']:<10} purity {p['purity']:.3f} ({p['labelled']} labelled)"
                )
    nov = summary.get("novelty", summary)
    cands = nov.get("candidate_new_dialects", [])
    lines.append("candidate new dialects (clusters, or parts of clusters, without or with too few labelled "
                 f"songs): {len(cands)}")  # fmt: skip
    for e in cands:
        labs = ", ".join(f"{k} {v}" for k, v in sorted(e.get("labels", {}).items(), key=lambda kv: -kv[1]))
        what = f"cluster {e['cluster']}" + (f" part {e['subgroup']}" if "subgroup" in e else "")
        lines.append(f"  {what}: {e['size']} songs; {e.get('why', 'no labelled songs')}"
                     + (f" ({labs})" if labs else ""))  # fmt: skip
    if nov.get("note"):
        lines.append(f"  ({nov['note']})")
    ch = nov.get("changes")
    if ch:
        lines.append(f"changes since {nov['previous_run']}:")
        for e in ch["clusters"]:
            extra = (
                f" ~ previous {e['matched']} (Jaccard {e['jaccard']:.2f})"
                if e.get("matched") is not None
                else ""
            )
            lines.append(f"  cluster {e['cluster']}: {e['status']}{extra}, {e['size']} songs, {e['new_members']} new"
                         + (f"; {e['note']}" if e.get("note") else ""))  # fmt: skip
        for g in ch["previous_clusters_gone"]:
            lines.append(f"  previous cluster {g['previous_cluster']}: {g['status']}"
                         + (f" into {g['into']}" if g.get("into") is not None else ""))  # fmt: skip
    elif nov.get("previous_run") is None:
        lines.append("no previous run of this encoder version to compare with")
    return "\n".join(lines)
