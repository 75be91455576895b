"""``yh-server`` commands on dialect clusters: ``cluster`` (a full HDBSCAN run), ``assign``
(songs that arrived since a prototype run) and ``novelty`` (candidate new dialects).
"""

from __future__ import annotations

import json

import click

from .app import echo_json, main, open_db, server_config


def _progress(msg: str) -> None:
    click.echo(f"... {msg}", err=True)


@main.command("cluster")
@click.option(
    "--encoder",
    "encoder_version",
    default=None,
    help="Encoder version to cluster (default: the one with most detections). Versions are never mixed.",
)
@click.option("--all-encoders", is_flag=True, help="Run once per encoder version.")
@click.option("--min-cluster-size", type=int, default=15, show_default=True)
@click.option(
    "--min-samples",
    type=int,
    default=None,
    help="HDBSCAN min_samples (default 3 on songs, min(min-cluster-size, 10) on prototypes; "
    "songs HDBSCAN was not fitted on take the majority of min(min-cluster-size, 10) neighbours).",
)
@click.option(
    "--reduce-dim", type=int, default=12, show_default=True, help="PCA components before HDBSCAN (0 = none)."
)
@click.option("--selection", type=click.Choice(["eom", "leaf"]), default="eom", show_default=True)
@click.option(
    "--max-fit",
    type=int,
    default=20000,
    show_default=True,
    help="Fit HDBSCAN on at most this many points (the rest are assigned to the nearest).",
)
@click.option(
    "--map",
    "map_method",
    type=click.Choice(["auto", "pca", "tsne", "umap"]),
    default=None,
    help="2-D/3-D map coordinates (default: cluster.map of the server config, 'auto': a t-SNE 2-D map up to "
    "cluster.tsne_max songs, PCA above; 'umap' needs umap-learn).",
)
@click.option(
    "--include-truncated", is_flag=True, help="Quality filter: fit songs cut off at a stream boundary too."
)
@click.option(
    "--include-overlap", is_flag=True, help="Quality filter: fit songs cut out of overlapping songs too."
)
@click.option(
    "--include-unrefined",
    is_flag=True,
    help="Quality filter: fit songs placed by the detector windows alone too.",
)
@click.option(
    "--include-incomplete",
    is_flag=True,
    help="Fit and assign songs the device marks incomplete (complete probability < 0.5) too; by default "
    "they are kept out and shown as 'incomplete', never as a dialect cluster (--no-quality-filter keeps that).",
)
@click.option("--min-duration", type=float, default=1.2, show_default=True,
              help="Quality filter: fit only songs at least this long (s).")  # fmt: skip
@click.option("--max-duration", type=float, default=60.0, show_default=True,
              help="Quality filter: fit only songs at most this long (s).")  # fmt: skip
@click.option("--no-quality-filter", is_flag=True, help="Fit every song (overrides the options above).")
@click.option(
    "--excluded",
    type=click.Choice(["assign", "outlier"]),
    default="assign",
    show_default=True,
    help="Songs the quality filter kept out: join the cluster of their nearest fitted songs (flagged "
    "fitted=0), or stay unclustered (-1). Their reason is stored either way.",
)
@click.option("--method", type=click.Choice(["sample", "prototypes"]), default="sample", show_default=True,
              help="'prototypes' for large runs (100k+ songs): HDBSCAN on k-means prototypes of each device-day, "
              "songs by their nearest prototype; keeps a model for `yh-server assign`.")  # fmt: skip
@click.option("--per-prototype", type=int, default=40, show_default=True,
              help="--method prototypes: songs per prototype inside a device-day.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary (metrics, novelty) as JSON.")
@click.pass_context
def cluster(ctx, encoder_version, all_encoders, as_json, **options) -> None:
    """HDBSCAN dialect clusters of one encoder version; stores the run, prints metrics and novelty.

    A quality filter decides which songs HDBSCAN is fitted on: by default songs cut off at a
    stream boundary (truncated), cut out of overlapping songs (overlap) or placed by the detector
    windows alone (unrefined) are kept out and then assigned to the nearest cluster (--excluded).
    Songs the device's encoder marks incomplete (no terminal phrase) are kept out and never
    assigned: they are listed as "incomplete" (cluster -2), never as a dialect cluster.
    """
    from ..clustering import ClusterError, format_report, run_clustering

    try:
        params = _cluster_params(server_config(ctx).cluster, **options)
        storage = open_db(ctx)
        try:
            if all_encoders:
                summaries = _each_version(storage, params, None if as_json else _progress)
            else:
                summaries = [run_clustering(storage, encoder_version, params, None if as_json else _progress)]
        finally:
            storage.close()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(summaries if all_encoders else summaries[0])
    else:
        click.echo("\n\n".join(format_report(s) for s in summaries))


def _each_version(storage, params, progress) -> list[dict]:
    """``--all-encoders``: a run per encoder version; a version that cannot be clustered (too few
    songs) is skipped with a message on stderr, the others are clustered. Fails when none was."""
    from ..clustering import ClusterError, run_clustering

    summaries, skipped = [], []
    for e in storage.encoder_summary():
        try:
            summaries.append(run_clustering(storage, e["encoder_version"], params, progress))
        except ClusterError as exc:
            skipped.append(f"{e['encoder_version']}: {exc}")
            click.echo(f"skipped encoder version {e['encoder_version']}: {exc}", err=True)
    if not summaries:
        raise ClusterError(
            "no encoder version could be clustered (" + "; ".join(skipped or ["no detections"]) + ")"
        )
    return summaries


def _cluster_params(ccfg, *, no_quality_filter, map_method, include_truncated, include_overlap,
                    include_unrefined, min_duration, max_duration, **rest):  # fmt: skip
    """The run's :class:`ClusterParams` from the ``cluster`` options and the config's ``cluster``
    table (map method default, t-SNE limit); ``--no-quality-filter`` fits every song."""
    from ..clustering import ClusterParams

    if no_quality_filter:
        include_truncated = include_overlap = include_unrefined = True
        min_duration, max_duration = 0.0, 60.0
    return ClusterParams(
        map_method=map_method or ccfg.map,
        tsne_max=ccfg.tsne_max,
        include_truncated=include_truncated,
        include_overlap=include_overlap,
        include_unrefined=include_unrefined,
        min_duration_s=min_duration,
        max_duration_s=max_duration,
        **rest,
    )


@main.command("assign")
@click.option("--run", "run_id", default=None, help="Prototype run (default: the latest one).")
@click.option(
    "--encoder", "encoder_version", default=None, help="Latest prototype run of this encoder version."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def assign_cmd(ctx, run_id, encoder_version, as_json) -> None:
    """Assign songs that arrived since the latest `cluster --method prototypes` run to its clusters
    (nearest prototype, the run's outlier rule); cheap, for a timer between full runs."""
    from ..clustering import ClusterError, assign_new

    storage = open_db(ctx)
    try:
        out = assign_new(storage, run_id, encoder_version)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
    if as_json:
        echo_json(out)
    else:
        click.echo(f"run {out['run_id']}: {out['songs']} new songs, {out['assigned']} assigned to clusters, "
                   f"{out['outliers']} outliers")  # fmt: skip


@main.command("novelty")
@click.option("--run", "run_id", default=None, help="Cluster run id (default: the latest).")
@click.option("--encoder", "encoder_version", default=None, help="Latest run of this encoder version.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def novelty(ctx, run_id, encoder_version, as_json) -> None:
    """Candidate new dialects (clusters without labelled songs) and changes since the previous run."""
    from ..clustering import ClusterError, format_report, novelty_report

    storage = open_db(ctx, readonly=True)
    try:
        rep = novelty_report(storage, run_id, encoder_version)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
    click.echo(json.dumps(rep, indent=2, default=str) if as_json else format_report(rep))
