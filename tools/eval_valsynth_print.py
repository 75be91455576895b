"""The text report of ``tools/eval_valsynth.py``: one printer per section of its report dict
(segmentation, encoder with song ends given, BirdNET, end to end)."""

from __future__ import annotations

import click


def print_report(rep: dict) -> None:
    """Every section the report holds, in order."""
    for key, printer in (
        ("segmentation", print_segmentation),
        ("encoder_song_ends_given", print_encoder),
        ("birdnet", print_birdnet),
        ("end_to_end", print_end_to_end),
    ):
        if rep.get(key):
            printer(rep[key])


def print_segmentation(seg: dict) -> None:
    """The segmentation table: per song group, detections per song and song-end errors."""
    click.echo(f"SEGMENTATION ({seg['files']} files, {seg['hours']} h, yh-edge analyze)")
    click.echo(
        f"{'songs':<22}{'n':>5}{'one':>7}{'none':>7}{'2+':>7}{'|end err| med':>15}{'p90':>7}"
        f"{'signed med':>12}{'<=0.25s':>9}{'one,own':>9}"
    )
    for k, b in seg.items():
        if isinstance(b, dict) and b.get("songs"):
            click.echo(
                f"{k:<22}{b['songs']:>5}{b['exactly_one']:>7.3f}{b['none']:>7.3f}{b['two_or_more']:>7.3f}"
                f"{b['end_error_abs_median_s'] or float('nan'):>15.3f}{b['end_error_abs_p90_s'] or float('nan'):>7.3f}"
                f"{b['end_error_signed_median_s'] or float('nan'):>12.3f}{b['end_error_within_0.25s'] or 0:>9.3f}"
                f"{b['one_and_not_shared']:>9.3f}"
            )
    click.echo(
        f"false detections: {seg['false_detections']} ({seg['false_per_hour']} per hour), in "
        f"{seg['files_with_false_detection']} of {seg['files']} files"
    )


def print_encoder(enc: dict) -> None:
    """HDBSCAN and 1-NN of the encoder with the song ends given, per song group."""
    click.echo(f"\nENCODER, song ends given ({enc['encoder_version']}, {enc['songs']} songs)")
    for k in ("complete_songs", "all_songs"):
        c = enc[k]["hdbscan"]
        nn = enc[k]["one_nn_other_bird"]
        click.echo(
            f"{k:<15} HDBSCAN ARI {c['ari']:.3f}  NMI {c['nmi']:.3f}  ARI(clustered) "
            f"{c['ari_clustered'] or float('nan'):.3f}  outliers {100 * c['outlier_fraction']:.1f} %  "
            f"clusters {c['clusters']}   1-NN other bird {nn['accuracy']:.3f} (n={nn['n']})"
        )
        for cl, comp in c["composition"].items():
            click.echo(f"    cluster {cl:>3}: " + ", ".join(f"{k2} {v}" for k2, v in comp.items()))
        click.echo(
            "    1-NN per label: " + ", ".join(f"{d} {v['accuracy']:.2f}" for d, v in nn["per_label"].items())
        )
    if enc.get("complete_head"):
        click.echo("complete head: " + "  ".join(f"{k} {v}" for k, v in enc["complete_head"].items()))


def print_birdnet(bn: dict) -> None:
    """BirdNET V2.4 around each song, per song group."""
    click.echo("\nBIRDNET V2.4 on a 3-s window around each song (top-1 YH | YH or pine | mean YH score)")
    for k, b in bn.items():
        if b.get("songs"):
            click.echo(
                f"  {k:<36}{b['songs']:>5}  {b['top1_yellowhammer']:.3f} | "
                f"{b['top1_yellowhammer_or_pine']:.3f} | {b['yellowhammer_score_mean']:.3f}"
            )


def print_end_to_end(e2e: dict) -> None:
    """Detection, fit coverage and clusters of the end-to-end run."""
    cov = e2e["coverage"]
    click.echo(
        f"\nEND TO END (analyze -> server import -> cluster, quality filter on): {e2e['songs_with_a_detection']} "
        f"of {e2e['songs']} songs detected; fitted {cov.get('passed_filter')} of {cov.get('songs')} detections; "
        f"{e2e['clusters']} clusters"
    )
    for k in ("fitted_songs", "detected_songs", "all_songs_missed_as_outliers"):
        m = e2e[k]
        if m:
            click.echo(
                f"  {k:<30} ARI {m['ari']:.3f}  NMI {m['nmi']:.3f}  outliers {100 * m['outlier_fraction']:.1f} %  "
                f"(n={m['labelled_points']})"
            )
    for cl, c in e2e["composition"].items():
        click.echo(f"    cluster {cl:>3}: " + ", ".join(f"{k2} {v}" for k2, v in c.items()))
