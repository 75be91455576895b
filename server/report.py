"""``report``: an HTML page with PNG plots (matplotlib, Agg backend; no display needed).

Plots: songs per device and day on a real time axis (a gap of days shows as a gap), the 2-D
map of the latest run of each encoder version coloured by cluster with dialect names in the
legend (outliers grey; distinct colours, :mod:`server.dialects`), and the cluster mix per device;
a table of each run's clusters (size, devices, labelled songs, majority label, purity, name).
With ``base_url`` (the web app's address; ``/`` when the app serves the report itself) the
tables link to the app's pages.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from edge.kit.version import __version__

from .clustering import novelty_report
from .dialects import cluster_label, cluster_table, colour, display_names
from .places import in_range, iso
from .storage import Storage

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib reports font and unit choices at INFO; the report is no place for them
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    """A file-name part for an encoder version, unique per version: the version itself when it is
    lower-case letters, digits, ``-`` and ``.``; else those characters with ``_`` for the others
    and a hash of the exact version (``enc+1`` and ``enc:1``, or ``Enc-1`` and ``enc-1`` on a
    case-blind file system, would share a file otherwise)."""
    if name and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-." for c in name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "_" for c in name)[:80] + "_" + digest


def _tex(text: str) -> str:
    """Text for a matplotlib label or title: a ``$`` would start mathtext (and a name like
    ``$\\frac{$`` fail the whole figure), so each is escaped to show as itself."""
    return str(text).replace("$", r"\$")


def _legend_outside(ax, n: int) -> None:
    """The legend right of the axes, never over the data."""
    if n:
        ax.legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                  ncol=1 if n <= 22 else 2, frameon=False)  # fmt: skip


def write_report(storage: Storage, out_dir: str | Path, base_url: str = "") -> dict:
    """Figures and ``index.html`` (+ ``report.json``) in ``out_dir``; links to the web app at ``base_url``."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    detections = list(storage.iter_detections())
    counts = storage.counts()
    link = (lambda path: base_url.rstrip("/") + path) if base_url else None
    sections, images, tables = [], [], []
    if _per_day_figure(plt, detections, out / "detections_per_day.png"):
        images.append("detections_per_day.png")
        sections.append(("Songs per device and day", "detections_per_day.png", "", ""))
    device_of = {d["id"]: d["device_id"] for d in detections}
    latest: dict[str, dict] = {}
    for r in storage.cluster_runs():
        latest[r["encoder_version"]] = r
    for version, run in latest.items():
        secs, imgs, table = _run_sections(plt, storage, version, run, device_of, out, link)
        sections += secs
        images += imgs
        tables.append({"run_id": run["run_id"], "clusters": table})
    (out / "index.html").write_text(_page(storage, counts, sections, link), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"counts": counts, "images": images, "clusters": tables}, indent=2,
                                                default=str))  # fmt: skip
    return {"dir": str(out), "html": "index.html", "images": images}


def _per_day_figure(plt, detections: list[dict], path: Path) -> bool:
    """Songs per device and day, stacked on a date axis; False when there are no songs."""
    import matplotlib.dates as mdates

    per_day: dict[str, Counter] = defaultdict(Counter)
    for d in detections:
        # a time out of the calendar's range (a bad clock, stored before the decode checked it),
        # or within two days of its ends, has no place on matplotlib's date axis
        if in_range(d["start_time"] - 2 * 86400) and in_range(d["start_time"] + 2 * 86400):
            per_day[d["device_id"]][int(d["start_time"] // 86400)] += 1
    if not per_day:
        return False
    days = sorted({day for c in per_day.values() for day in c})
    fig, ax = plt.subplots(figsize=(10, 4))
    bottom: Counter = Counter()
    for i, (dev, c) in enumerate(sorted(per_day.items())):
        xs = sorted(c)
        ax.bar([mdates.num2date(x) for x in xs], [c[x] for x in xs], bottom=[bottom[x] for x in xs], width=0.9,
               align="edge", label=_tex(dev), color=colour(i))  # fmt: skip
        for x in xs:
            bottom[x] += c[x]
    span = days[-1] - days[0] + 1
    ax.set_xlim(mdates.num2date(days[0] - 0.5), mdates.num2date(days[-1] + 1.5))
    loc = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.set_ylabel("songs per day")
    ax.set_title(f"Songs per device and day (UTC), {span} days", fontsize=11)
    _legend_outside(ax, len(per_day) if len(per_day) <= 40 else 0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _run_sections(plt, storage: Storage, version: str, run: dict, device_of: dict, out: Path, link):
    """The dialect map and the clusters-per-device figure of one cluster run, with their text."""
    members = storage.run_members(run["run_id"])
    table = cluster_table(storage, run, members)
    names = display_names(table)
    name = _safe(version)
    _map_figure(plt, version, run, members, names, out / f"map_{name}.png")
    _per_device_figure(plt, version, members, names, device_of, out / f"clusters_per_device_{name}.png")
    nov = novelty_report(storage, run["run_id"])
    metrics = run["metrics"]
    cands = ", ".join(names.get(e["cluster"], str(e["cluster"])) + (f" part {e['subgroup']}" if "subgroup" in e else "")
                      for e in nov["candidate_new_dialects"]) or "none"  # fmt: skip
    text = (f"{run['n_points']} songs, {run['n_clusters']} clusters, {run['n_outliers']} outliers. "
            f"Candidate new dialects: {cands}.")  # fmt: skip
    if "ari" in metrics:
        text += f" Against labels (at clustering time): ARI {metrics['ari']:.3f}, NMI {metrics['nmi']:.3f}."
    sections = [(f"Dialect map: {version}", f"map_{name}.png", text, _table_html(run, table, link)),
                (f"Clusters per device: {version}", f"clusters_per_device_{name}.png", "", "")]  # fmt: skip
    return sections, [f"map_{name}.png", f"clusters_per_device_{name}.png"], table


def _map_figure(plt, version: str, run: dict, members: list[dict], names: dict, path: Path) -> None:
    method = run["params"].get("map_method", "pca")
    fig, ax = plt.subplots(figsize=(9, 6.5))
    by: dict[int, list] = defaultdict(list)
    for m in members:
        by[m["cluster"]].append((m["x2"], m["y2"]))
    for c in sorted(by, key=lambda c: (c >= 0, c)):  # outliers first, underneath
        xs, ys = zip(*by[c], strict=True)
        ax.scatter(
            xs, ys, s=4 if c < 0 else 7, color=colour(c), label=_tex(f"{names[c]} ({len(xs)})"), linewidths=0
        )
    ax.set_title(_tex(f"Dialect map of {version}\n{run['n_clusters']} clusters, {run['n_points']} songs, "
                      f"{method} map, run {run['run_id']}"), fontsize=10)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    _legend_outside(ax, len(by) if len(by) <= 45 else 0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_device_figure(
    plt, version: str, members: list[dict], names: dict, device_of: dict, path: Path
) -> None:
    per_dev: dict[str, Counter] = defaultdict(Counter)
    for m in members:
        per_dev[device_of.get(m["detection_id"], "?")][m["cluster"]] += 1
    clusters = sorted({c for cnt in per_dev.values() for c in cnt}, key=lambda c: (c < 0, c))
    devs = sorted(per_dev)
    fig, ax = plt.subplots(figsize=(max(7, 0.5 * len(devs) + 5), 4.5))
    bottom = [0] * len(devs)
    for c in clusters:
        vals = [per_dev[d].get(c, 0) for d in devs]
        ax.bar(
            [_tex(d) for d in devs], vals, bottom=bottom, color=colour(c), label=_tex(names.get(c, str(c)))
        )
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("songs")
    ax.set_title(_tex(f"Clusters per device ({version})"), fontsize=10)
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    _legend_outside(ax, len(clusters) if len(clusters) <= 45 else 0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _page(storage: Storage, counts: dict, sections: list, link) -> str:
    body = [f"<h1>Yellowhammer dialect monitor</h1><p>{counts['detections']} songs from "
            f"{counts['devices']} devices; {counts['labels']} labelled; {counts['quarantined']} messages quarantined; "
            f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by yellowhammer {__version__}."
            + (f' <a href="{link("/")}">Open the web app</a>.' if link else "") + "</p>"]  # fmt: skip
    for title, img, text, extra in sections:
        body.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>"
                    f'<img src="{html.escape(img)}" alt="{html.escape(title)}">{extra}')  # fmt: skip
    head = f'<a href="{link("/devices")}">Devices</a>' if link else "Devices"
    body.append(f"<h2>{head}</h2><table><tr><th>device</th><th>status</th><th>songs</th><th>last song</th>"
                "<th>site</th><th>position</th></tr>")  # fmt: skip
    for d in storage.devices():
        last = (iso(d["last_detection"]) or "?")[:16].replace("T", " ") if d["last_detection"] else ""
        pos = f"{d['latitude']:.5f}, {d['longitude']:.5f}" if d.get("latitude") is not None else ""
        body.append(f"<tr><td>{html.escape(str(d['device_id']))}</td><td>{html.escape(str(d['status'] or ''))}</td>"
                    f"<td>{d['detections'] or 0}</td><td>{last}</td><td>{html.escape(d.get('site') or '')}</td>"
                    f"<td>{pos}</td></tr>")  # fmt: skip
    body.append("</table>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Yellowhammer report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 12px}img{max-width:100%}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
            ".sw{display:inline-block;width:11px;height:11px;margin-right:5px;border-radius:2px}</style></head><body>"
            + "\n".join(body) + "</body></html>")  # fmt: skip


def _table_html(run: dict, table: list[dict], link) -> str:
    rows = ["<table><tr><th>cluster</th><th>dialect name</th><th>songs</th><th>fitted</th><th>devices</th>"
            "<th>labelled</th><th>majority label</th><th>purity</th></tr>"]  # fmt: skip
    for r in table:
        c = r["cluster"]
        label = cluster_label(c)
        if link:
            href = link(f"/clusters/{run['run_id']}/{c}")
            label = f'<a href="{href}">{label}</a>'
        purity = "" if r["purity"] is None else f"{r['purity']:.2f}"
        rows.append(f'<tr><td><span class="sw" style="background:{r["colour"]}"></span>{label}</td>'
                    f"<td>{html.escape(r['name'] if c >= 0 else '')}</td><td>{r['size']}</td><td>{r['fitted']}</td>"
                    f"<td>{r['devices']}</td><td>{r['labelled']}</td><td>{html.escape(r['majority'] or '')}</td>"
                    f"<td>{purity}</td></tr>")  # fmt: skip
    rows.append("</table>")
    return "".join(rows)
