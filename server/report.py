"""``report``: an HTML page with PNG plots (matplotlib, Agg backend; no display needed).

Plots: the 2-D map of the latest run of each encoder version coloured by cluster (outliers
grey), detections per device and day, and clusters per device.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from edge import __version__

from .clustering import novelty_report
from .storage import Storage


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(storage: Storage, out_dir: str | Path) -> dict:
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections, images = [], []
    detections = list(storage.iter_detections())
    counts = storage.counts()

    # detections per device and day
    per_day: dict[str, Counter] = defaultdict(Counter)
    for d in detections:
        per_day[d["device_id"]][time.strftime("%Y-%m-%d", time.gmtime(d["start_time"]))] += 1
    if per_day:
        days = sorted({day for c in per_day.values() for day in c})
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(days) + 3), 4))
        bottom = [0] * len(days)
        for dev, c in sorted(per_day.items()):
            vals = [c.get(day, 0) for day in days]
            ax.bar(days, vals, bottom=bottom, label=dev)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("detections")
        ax.set_title("Detections per device and day (UTC)")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        if len(per_day) <= 20:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "detections_per_day.png", dpi=110)
        plt.close(fig)
        images.append("detections_per_day.png")
        sections.append(("Detections per device and day", "detections_per_day.png", ""))

    device_of = {d["id"]: d["device_id"] for d in detections}
    latest: dict[str, dict] = {}
    for r in storage.cluster_runs():
        latest[r["encoder_version"]] = r
    for version, run in latest.items():
        members = storage.run_members(run["run_id"])
        name = _safe(version)
        fig, ax = plt.subplots(figsize=(7, 6))
        by: dict[int, list] = defaultdict(list)
        for m in members:
            by[m["cluster"]].append((m["x2"], m["y2"]))
        cmap = plt.get_cmap("tab20")
        for c, pts in sorted(by.items()):
            xs, ys = zip(*pts, strict=True)
            if c < 0:
                ax.scatter(xs, ys, s=4, c="lightgrey", label="outliers")
            else:
                ax.scatter(xs, ys, s=6, color=cmap(c % 20), label=f"cluster {c}")
        ax.set_title(f"{version}: {run['n_clusters']} clusters, run {run['run_id']}")
        if len(by) <= 21:
            ax.legend(fontsize=6, markerscale=2, loc="best")
        fig.tight_layout()
        fig.savefig(out / f"map_{name}.png", dpi=110)
        plt.close(fig)
        # clusters per device
        per_dev: dict[str, Counter] = defaultdict(Counter)
        for m in members:
            per_dev[device_of.get(m["detection_id"], "?")][m["cluster"]] += 1
        clusters = sorted({c for cnt in per_dev.values() for c in cnt})
        devs = sorted(per_dev)
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(devs) + 3), 4))
        bottom = [0] * len(devs)
        for c in clusters:
            vals = [per_dev[d].get(c, 0) for d in devs]
            ax.bar(devs, vals, bottom=bottom, color="lightgrey" if c < 0 else cmap(c % 20),
                   label="outliers" if c < 0 else f"cluster {c}")  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("songs")
        ax.set_title(f"Clusters per device ({version})")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        if len(clusters) <= 21:
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / f"clusters_per_device_{name}.png", dpi=110)
        plt.close(fig)
        images += [f"map_{name}.png", f"clusters_per_device_{name}.png"]
        nov = novelty_report(storage, run["run_id"])
        metrics = run["metrics"]
        text = (f"{run['n_points']} songs, {run['n_clusters']} clusters, {run['n_outliers']} outliers. "
                f"Candidate new dialects: {', '.join(str(e['cluster']) for e in nov['candidate_new_dialects']) or 'none'}.")  # fmt: skip
        if "ari" in metrics:
            text += f" Against labels: ARI {metrics['ari']:.3f}, NMI {metrics['nmi']:.3f}."
        sections.append((f"Dialect map: {version}", f"map_{name}.png", text))
        sections.append((f"Clusters per device: {version}", f"clusters_per_device_{name}.png", ""))

    body = [f"<h1>Yellowhammer dialect monitor</h1><p>{counts['detections']} detections from "
            f"{counts['devices']} devices; {counts['quarantined']} messages quarantined; generated "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by yellowhammer {__version__}.</p>"]  # fmt: skip
    for title, img, text in sections:
        body.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>"
                    f'<img src="{html.escape(img)}" alt="{html.escape(title)}">')  # fmt: skip
    devs = storage.devices()
    body.append(
        "<h2>Devices</h2><table><tr><th>device</th><th>status</th><th>detections</th><th>last detection</th></tr>"
    )
    for d in devs:
        last = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(d["last_detection"])) if d["last_detection"] else ""
        )
        body.append(f"<tr><td>{html.escape(str(d['device_id']))}</td><td>{html.escape(str(d['status'] or ''))}</td>"
                    f"<td>{d['detections'] or 0}</td><td>{last}</td></tr>")  # fmt: skip
    body.append("</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Yellowhammer report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}img{max-width:100%}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
            + "\n".join(body) + "</body></html>")  # fmt: skip
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"counts": counts, "images": images}, indent=2, default=str))
    return {"dir": str(out), "html": "index.html", "images": images}
