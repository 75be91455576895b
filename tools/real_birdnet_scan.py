"""Scan every recording of a realaudio folder with BirdNET V2.4 for yellowhammers (1-s hop).

Used to find the recordings that need hand labelling (model_export/labels/README.md): every
file whose yellowhammer score reaches ``--min-score`` in any 3-s window is listed.

Per-file scores are cached as ``CACHE/<relpath>.npz`` (``yh``: yellowhammer score of the 3-s
window starting at k s, k = 0, 1, ...; ``top``: index of the top species per window;
``top_score``) so that a re-run only scores new files.

Usage::

    nice -n 10 python tools/real_birdnet_scan.py --root /work/shared/realaudio \
        --cache /work/scratch/reallabels/birdnet --min-score 0.1 > hits.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("real_birdnet_scan")


def scan_file(bn, path: Path, cache: Path) -> dict[str, np.ndarray]:
    """BirdNET scores of one file (cached): yellowhammer score and top species per 1-s hop."""
    from model_export.birdnet import SAMPLE_RATE, WINDOW, YELLOWHAMMER_INDEX
    from model_export.synth import load_audio

    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    audio = load_audio(path, SAMPLE_RATE)
    if audio.size < WINDOW:
        audio = np.pad(audio, (0, WINDOW - audio.size))
    s = bn.scores(audio, SAMPLE_RATE, hop_s=1.0)
    out = {
        "yh": s[:, YELLOWHAMMER_INDEX].astype(np.float32),
        "top": np.argmax(s, axis=1).astype(np.int32),
        "top_score": np.max(s, axis=1).astype(np.float32),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(cache)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realaudio")
    ap.add_argument("--cache", type=Path, required=True, help="folder for the per-file score cache")
    ap.add_argument("--min-score", type=float, default=0.1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    from model_export.birdnet import BirdNET

    bn = BirdNET()
    with open(args.root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    w = csv.writer(sys.stdout)
    w.writerow(["file", "label", "max_yh", "t_max_s", "n_windows_ge", "yh_top1_windows"])
    for i, r in enumerate(rows):
        p = args.root / r["file"]
        if not p.exists():
            log.warning("%s: missing", p)
            continue
        try:
            s = scan_file(bn, p, args.cache / (r["file"] + ".npz"))
        except RuntimeError as exc:  # AudioReadError: an undecodable file is reported, not fatal
            log.warning("%s", exc)
            continue
        if i % 50 == 0:
            log.info("%d/%d %s", i, len(rows), r["file"])
        m = float(s["yh"].max())
        if m >= args.min_score or r["label"] in ("yellowhammer", "other_with_yellowhammer_background"):
            w.writerow(
                [
                    r["file"],
                    r["label"],
                    f"{m:.3f}",
                    int(np.argmax(s["yh"])),
                    int(np.sum(s["yh"] >= args.min_score)),
                    int(np.sum(s["top"] == 2098)),
                ]
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
