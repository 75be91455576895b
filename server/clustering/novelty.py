"""The novelty report: clusters without labelled songs, and under-labelled parts of known
clusters (a new dialect that HDBSCAN merged into a known one), with changes since the previous run."""

from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np

from server.clustering.fit import ClusterParams
from server.clustering.metrics import compare_runs, members_by_cluster
from server.errors import ClusterError
from server.storage import Storage

log = logging.getLogger(__name__)


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
    for c, members in sorted(members_by_cluster(passed).items()):
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
    fitted = members_by_cluster(passed)
    everyone = members_by_cluster([r for r in rows if r["cluster"] >= 0])
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
