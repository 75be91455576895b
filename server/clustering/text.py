"""Run summaries and novelty reports as text for the terminal."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
