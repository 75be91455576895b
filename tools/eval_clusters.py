#!/usr/bin/env python3
"""Evaluate the server's dialect clusters against true labels, with optional held-out dialects.

Takes a server database or an edge database (from ``yh-edge analyze``/the daemon) and a labels
CSV (``detection_id,label`` or ``device_id,start_time,label``), works on a temporary copy (the
input is never modified), and prints:

- ARI, NMI (outliers as one extra class), ARI over clustered points, outlier share, per-cluster
  purity, all against the *full* labels;
- the novelty report as the server computes it when the ``--hide`` dialects are *not* labelled
  (as for a dialect the encoder never saw), and for each hidden dialect whether a candidate-new
  cluster (or an under-labelled part of a known cluster) is made of it (share of the dialect's
  songs in it and its purity); ``--label-fraction`` gives the server only a random share of the
  other labels, as when researchers label a sample.

    python tools/eval_clusters.py DB LABELS.csv [--hide XsB] [--label-fraction 0.3] [--encoder V]
        [--min-cluster-size 15] [--json]

Exit status 0 always when it ran (it reports; the thresholds are the reader's, e.g. ARI >= 0.8).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.clustering import ClusterError, ClusterParams, evaluate, format_report, run_clustering  # noqa: E402
from server.ingest import import_edge_db  # noqa: E402
from server.labels import import_labels  # noqa: E402
from server.storage import StorageError
from server.storage.sqlite import SqliteStorage  # noqa: E402


def _is_edge_db(path: Path) -> bool:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return "outbox" in tables


@click.command()
@click.argument("db", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("labels_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hide", multiple=True, help="Dialect label(s) withheld from the server (novelty check).")
@click.option(
    "--label-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Give the server only this random share of the (other) labels, as when researchers "
    "label a sample of the songs; the scores still use every label.",
)
@click.option("--label-seed", default=0, show_default=True, help="Seed of the --label-fraction sample.")
@click.option("--encoder", "encoder_version", default=None)
@click.option("--min-cluster-size", type=int, default=15, show_default=True)
@click.option("--min-samples", type=int, default=None)
@click.option("--reduce-dim", type=int, default=12, show_default=True)
@click.option("--include-truncated", is_flag=True)
@click.option("--include-overlap", is_flag=True)
@click.option("--min-duration", type=float, default=1.2, show_default=True)
@click.option("--max-duration", type=float, default=60.0, show_default=True)
@click.option(
    "--no-quality-filter", is_flag=True, help="Fit every song (as yh-server cluster --no-quality-filter)."
)
@click.option("--excluded", type=click.Choice(["assign", "outlier"]), default="assign", show_default=True)
@click.option(
    "--tolerance", type=float, default=1.0, show_default=True, help="For device_id,start_time labels."
)
@click.option("--json", "as_json", is_flag=True)
def main(db, labels_csv, hide, label_fraction, label_seed, encoder_version, min_cluster_size, min_samples, reduce_dim, include_truncated,
         include_overlap, min_duration, max_duration, no_quality_filter, excluded, tolerance,
         as_json) -> None:  # fmt: skip
    """Cluster DB (server or edge database) and score it against LABELS_CSV."""
    include_unrefined = False
    if no_quality_filter:
        include_truncated = include_overlap = include_unrefined = True
        min_duration, max_duration = 0.0, 60.0
    params = ClusterParams(min_cluster_size=min_cluster_size, min_samples=min_samples,
                           reduce_dim=reduce_dim, include_truncated=include_truncated,
                           include_overlap=include_overlap, include_unrefined=include_unrefined,
                           min_duration_s=min_duration, max_duration_s=max_duration,
                           excluded=excluded)  # fmt: skip
    try:
        summary, members, truth, res = _cluster_copy(db, labels_csv, tolerance, hide, label_fraction, label_seed,
                                                     encoder_version, params)  # fmt: skip
    except (ClusterError, StorageError) as exc:
        raise click.ClickException(str(exc)) from None
    ids = [m["detection_id"] for m in members]
    # against the full labels (hidden ones included): over the songs that passed the quality filter
    # (what HDBSCAN was fitted on) and over every song of the run (the excluded ones assigned or -1)
    passed = [m for m in members if not m.get("excluded")]
    full = evaluate([m["detection_id"] for m in passed], np.array([m["cluster"] for m in passed]), truth)
    full_all = evaluate(ids, np.array([m["cluster"] for m in members]), truth)
    out = {
        "database": str(db),
        "labels": {
            "file": str(labels_csv),
            "matched": len(truth),
            "unresolved": len(res["unresolved"]),
            "hidden": list(hide),
            "label_fraction": label_fraction,
        },  # fmt: skip
        "run": {k: summary[k] for k in ("run_id", "encoder_version", "n_points", "n_clusters", "n_outliers")},
        "metrics_full_labels": full,
        "metrics_full_labels_all_songs": {k: v for k, v in full_all.items() if k != "purity"},
        "coverage": summary["metrics"].get("coverage", {}),
        "params": summary["params"],
        "hidden_dialects": _hidden_report(summary, members, truth, hide),
        "novelty": summary["novelty"],
    }
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    _print(out, summary, excluded, all_songs=len(passed) < len(members))


def _cluster_copy(db: Path, labels_csv: Path, tolerance: float, hide, label_fraction: float, label_seed: int,
                  encoder_version, params: ClusterParams):  # fmt: skip
    """Cluster a temporary copy of DB with the labels imported and the hidden ones removed:
    (run summary, members, the full labels, the label import result)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "server.sqlite"
        if _is_edge_db(db):
            storage = SqliteStorage(work)
            import_edge_db(storage, db)
        else:
            src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            dst = sqlite3.connect(work)
            src.backup(dst)
            src.close()
            dst.close()
            storage = SqliteStorage(work)
        try:
            res = import_labels(storage, labels_csv, tolerance)
            truth = storage.labels()
            hidden_ids = [i for i, lab in truth.items() if lab in set(hide)]
            if label_fraction < 1.0:
                rng = np.random.default_rng(label_seed)
                hidden_ids += [
                    i for i in sorted(truth) if truth[i] not in set(hide) and rng.random() >= label_fraction
                ]
            storage.delete_labels(hidden_ids)
            summary = run_clustering(storage, encoder_version, params)
            members = storage.run_members(summary["run_id"])
        finally:
            storage.close()
    return summary, members, truth, res


def _hidden_report(summary: dict, members: list[dict], truth: dict, hide) -> list[dict]:
    """For each hidden dialect: the novelty candidate made most of it, its share and purity."""
    by_cluster: dict[int, Counter] = {}
    for m in members:
        if m["detection_id"] in truth:
            by_cluster.setdefault(m["cluster"], Counter())[truth[m["detection_id"]]] += 1
    # each candidate's labelled songs by true dialect: a whole cluster, or the part of one that
    # the sub-group rule found (its fitted songs)
    cand_counts = []
    for e in summary["novelty"]["candidate_new_dialects"]:
        if "detection_ids" in e:
            cnt = Counter(truth[i] for i in e["detection_ids"] if i in truth)
        else:
            cnt = by_cluster.get(e["cluster"], Counter())
        cand_counts.append((e, cnt))
    report = []
    for lab in hide:
        n_lab = sum(c[lab] for c in by_cluster.values())
        best = max(cand_counts, key=lambda t: t[1][lab], default=None)
        entry = {"dialect": lab, "songs": n_lab, "found_as_novel": False}
        if best and best[1][lab] > 0:
            e, cnt = best
            k = cnt[lab]
            entry.update(found_as_novel=True, cluster=e["cluster"], share_of_dialect=round(k / n_lab, 4),
                         cluster_purity=round(k / sum(cnt.values()), 4))  # fmt: skip
            if "subgroup" in e:
                entry["part_of_cluster"] = True
            # all candidates in which the dialect is the largest group (it may come out in parts)
            mine = [c for _, c in cand_counts if c[lab] and c[lab] == max(c.values())]
            entry["candidates_of_dialect"] = len(mine)
            entry["share_in_those"] = round(sum(c[lab] for c in mine) / n_lab, 4)
            entry["purity_of_those"] = round(
                sum(c[lab] for c in mine) / max(1, sum(sum(c.values()) for c in mine)), 4
            )
        report.append(entry)
    return report


def _print(out: dict, summary: dict, excluded: str, all_songs: bool) -> None:
    lab, cov, m, a = (
        out["labels"],
        out["coverage"],
        out["metrics_full_labels"],
        out["metrics_full_labels_all_songs"],
    )
    click.echo(f"{out['database']}: {summary['n_points']} songs of {summary['encoder_version']}, {summary['n_clusters']} clusters, "
               f"{summary['n_outliers']} outliers; {lab['matched']} labelled ({lab['unresolved']} labels unresolved)")  # fmt: skip
    if cov:
        click.echo(f"quality filter: {cov['passed_filter']} of {cov['songs']} songs fitted ({100 * cov['passed_fraction']:.1f} %), "
                   f"kept out {cov['excluded_reasons'] or 'none'}, {excluded}: {cov['excluded_assigned']} of "
                   f"{cov['excluded']} got a cluster; coverage {cov['clustered']} of {cov['songs']} songs in a cluster "
                   f"({100 * cov['clustered_fraction']:.1f} %)")  # fmt: skip
    if a and all_songs:
        click.echo(f"all songs:      ARI {a['ari']:.3f}  NMI {a['nmi']:.3f}  ARI(clustered) "
                   f"{a.get('ari_clustered', float('nan')):.3f}  unclustered {100 * a['outlier_fraction']:.1f} %  "
                   f"({a['labelled_points']} labelled)")  # fmt: skip
    if m:
        click.echo(f"filtered songs: ARI {m['ari']:.3f}  NMI {m['nmi']:.3f}  ARI(clustered) {m.get('ari_clustered', float('nan')):.3f}  "
                   f"outliers {100 * m['outlier_fraction']:.1f} %  mean purity {m.get('mean_purity', 0):.3f}  "
                   f"({m['labelled_points']} labelled)")  # fmt: skip
        for c, p in m["purity"].items():
            click.echo(
                f"  cluster {c:>4}: {p['majority']:<8} purity {p['purity']:.3f}  ({p['labelled']} songs)"
            )
    for h in out["hidden_dialects"]:
        if h["found_as_novel"]:
            where = (
                f"part of cluster {h['cluster']}" if h.get("part_of_cluster") else f"cluster {h['cluster']}"
            )
            click.echo(f"hidden dialect {h['dialect']}: NOVEL {where} holds {100 * h['share_of_dialect']:.0f} % "
                       f"of its {h['songs']} songs (cluster purity {h['cluster_purity']:.3f})")  # fmt: skip
            if h["candidates_of_dialect"] > 1:
                click.echo(f"  {h['candidates_of_dialect']} candidates made mostly of {h['dialect']} hold "
                           f"{100 * h['share_in_those']:.0f} % of its songs (purity {h['purity_of_those']:.3f})")  # fmt: skip
        else:
            click.echo(f"hidden dialect {h['dialect']}: not found as a novel cluster ({h['songs']} songs)")
    click.echo(format_report({"novelty": summary["novelty"]}))


if __name__ == "__main__":
    main()
