"""What the researcher sees of a cluster run: a table of its clusters with their dialect names,
distinct colours, typical and outlying members, and the known clusters nearest to a candidate.

Used by the web app, the report and the GeoJSON export, so a cluster has the same name and
colour everywhere.

A cluster's **name** is, in this order: the name a researcher gave it in this run (web app);
the name given to the cluster it continues in the previous run of the same encoder version
(matched as in the novelty report's changes: Jaccard >= 0.5 over shared songs); or, as a
suggestion, the majority label of its labelled songs when that label holds at least
``SUGGEST_PURITY`` of them (shown with a ``?``).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from .clustering import INCOMPLETE_CLUSTER, compare_runs
from .storage import Storage

#: Kelly's colours of maximum contrast (without white, black and the grey kept for outliers):
#: neighbouring cluster numbers get colours that do not look related
PALETTE = ["#0067A5", "#F38400", "#008856", "#BE0032", "#875692", "#F3C300", "#A1CAF1", "#E68FAC", "#882D17",
           "#8DB600", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#654522", "#E25822", "#2B3D26", "#C2B280",
           "#F99379"]  # fmt: skip
OUTLIER_COLOUR = "#9a9a9a"
SUGGEST_PURITY = 0.6
_INHERIT_DEPTH = 5


def colour(cluster: int) -> str:
    return OUTLIER_COLOUR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def find_run(storage: Storage, run_id: str | None = None, encoder_version: str | None = None) -> dict | None:
    """A stored run by id, or the latest (of an encoder version); None when there is none."""
    runs = storage.cluster_runs(encoder_version)
    if run_id is None:
        return runs[-1] if runs else None
    return next((r for r in runs if r["run_id"] == run_id), None)


def given_names(storage: Storage, run: dict, depth: int = _INHERIT_DEPTH) -> dict[int, dict]:
    """Names researchers gave to this run's clusters, or to the clusters they continue in earlier
    runs: cluster -> ``{name, named_by, named_at, inherited_from}``."""
    names = {c: {**v, "inherited_from": None} for c, v in storage.cluster_names(run["run_id"]).items()}
    if depth <= 0:
        return names
    earlier = [r for r in storage.cluster_runs(run["encoder_version"]) if r["created_at"] < run["created_at"]]
    if not earlier:
        return names
    prev = earlier[-1]
    prev_names = given_names(storage, prev, depth - 1)
    if not prev_names:
        return names
    changes = compare_runs(storage.run_members(prev["run_id"]), storage.run_members(run["run_id"]))
    for e in changes["clusters"]:
        if (
            e["cluster"] not in names
            and e.get("matched") in prev_names
            and e["status"] in ("stable", "split")
        ):
            names[e["cluster"]] = {**prev_names[e["matched"]], "inherited_from": prev["run_id"]}
    return names


def cluster_table(storage: Storage, run: dict, members: list[dict] | None = None) -> list[dict]:
    """One row per cluster of a run (outliers last): size, songs fitted, devices, labelled songs,
    majority label and purity against the current labels, name and where it comes from, colour."""
    members = storage.run_members(run["run_id"]) if members is None else members
    truth = storage.labels()
    device_of = {
        d["id"]: d["device_id"] for d in storage.iter_detections(encoder_version=run["encoder_version"])
    }
    given = given_names(storage, run)
    by: dict[int, list[dict]] = defaultdict(list)
    for m in members:
        by[m["cluster"]].append(m)
    rows = []
    for c in sorted(by, key=lambda c: (c < 0, c)):
        ms = by[c]
        labs = Counter(truth[m["detection_id"]] for m in ms if m["detection_id"] in truth)
        k = sum(labs.values())
        majority, purity = (labs.most_common(1)[0][0], labs.most_common(1)[0][1] / k) if k else (None, None)
        devices = Counter(device_of.get(m["detection_id"], "?") for m in ms)
        row = {"cluster": c, "size": len(ms), "fitted": sum(1 for m in ms if m.get("fitted", 1)),
               "devices": len(devices), "device_counts": dict(devices.most_common()), "labelled": k,
               "labels": dict(labs.most_common()), "majority": majority,
               "purity": None if purity is None else round(purity, 4), "colour": colour(c)}  # fmt: skip
        if c == INCOMPLETE_CLUSTER:
            row.update(name="incomplete", name_source="incomplete")
        elif c < 0:
            row.update(name="outliers", name_source="outliers")
        elif c in given:
            g = given[c]
            row.update(name=g["name"], name_source="inherited" if g["inherited_from"] else "named",
                       named_by=g.get("named_by"), named_at=g.get("named_at"), inherited_from=g["inherited_from"])  # fmt: skip
        elif majority is not None and purity >= SUGGEST_PURITY:
            row.update(name=f"{majority}?", name_source="labels")
        else:
            row.update(name="", name_source="none")
        rows.append(row)
    return rows


def display_names(table: list[dict]) -> dict[int, str]:
    """Legend text per cluster: ``"3: BC"``, ``"4: BE?"`` (suggested by labels), ``"5"``, ``"outliers"``."""
    out = {}
    for r in table:
        c = r["cluster"]
        out[c] = cluster_label(c) if c < 0 else (f"{c}: {r['name']}" if r["name"] else f"cluster {c}")
    return out


def cluster_label(c: int) -> str:
    """What a cluster id is called where no dialect name applies: ``incomplete`` (songs without a
    terminal phrase, never a dialect cluster), ``outliers``, else the number."""
    return "incomplete" if c == INCOMPLETE_CLUSTER else ("outliers" if c < 0 else str(c))


def montage(members: list[dict], cluster: int, typical: int = 12, outliers: int = 6) -> dict[str, list[dict]]:
    """The members to show for a cluster: the most typical (fitted, highest membership strength)
    and the least (lowest strength, songs assigned after the fit included)."""
    ms = [m for m in members if m["cluster"] == cluster]
    fitted = sorted(
        (m for m in ms if m.get("fitted", 1)), key=lambda m: (-m["probability"], m["detection_id"])
    )
    top = fitted[: min(typical, max(1, len(ms) - outliers))]  # leave some for the other end
    chosen = {m["detection_id"] for m in top}
    rest = sorted(
        (m for m in ms if m["detection_id"] not in chosen),
        key=lambda m: (m["probability"], m["detection_id"]),
    )
    return {"typical": top, "outliers": rest[:outliers]}


def nearest_clusters(storage: Storage, run: dict, ids: list[str], members: list[dict], exclude: int | None = None,
                     k: int = 2) -> list[dict]:  # fmt: skip
    """The ``k`` clusters (but ``exclude``, the candidate's own) whose mean embedding is nearest to
    the mean of the songs ``ids``: what a candidate new dialect is most likely confused with."""
    all_ids, x, _ = storage.load_points(run["encoder_version"])
    if not len(all_ids):
        return []
    index = {i: j for j, i in enumerate(all_ids)}
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    own = [index[i] for i in ids if i in index]
    if not own:
        return []
    centre = x[own].mean(axis=0)
    mine = set(ids)
    by: dict[int, list[int]] = defaultdict(list)
    for m in members:
        if (
            m["cluster"] >= 0
            and m["cluster"] != exclude
            and m["detection_id"] in index
            and m["detection_id"] not in mine
        ):
            by[m["cluster"]].append(index[m["detection_id"]])
    out = []
    for c, rows in by.items():
        d = float(np.linalg.norm(x[rows].mean(axis=0) - centre))
        out.append({"cluster": c, "distance": round(d, 4), "size": len(rows)})
    return sorted(out, key=lambda e: e["distance"])[:k]
