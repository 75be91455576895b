"""How a run compares with labels and with the previous run."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np

log = logging.getLogger(__name__)


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
        "incomplete": int((labels == -2).sum()),
    }


# -- a stored run ---------------------------------------------------------------------------------


def members_by_cluster(rows: list[dict]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        out[r["cluster"]].add(r["detection_id"])
    return out


def compare_runs(prev_rows: list[dict], cur_rows: list[dict]) -> dict:
    """How clusters changed: each current cluster matched to the previous cluster it shares most
    members with (over detections present in both runs)."""
    prev = members_by_cluster(prev_rows)
    cur = members_by_cluster(cur_rows)
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
