"""Backgrounds for the validation sets: real test-split recordings, or synthetic noise for tests.

:class:`RealBackgrounds` uses only the **test split** of a realaudio-style folder
(``model_export.data.real_manifest``: rows with ``split == "test"`` and label ``soundscape`` or
``other``), which training never touches. Left out as well:

- rows whose notes mention a yellowhammer (``citrinella``, ``Goldammer``, ``yellowhammer``);
- ``nes8010_uk_xc/`` "other" files (UK farmland chaffinch/robin recordings: unlabelled
  yellowhammers sing in some of them);
- optionally, every file in which BirdNET V2.4 gives the yellowhammer >= 0.1 in any 3-s window
  (:func:`screen_birdnet`, cached as a CSV next to the set).

Soundscapes make the bed; "other" files (other species) are laid over it. The audio is read at
run time and never written anywhere except mixed into the generated WAVs.

:class:`NoiseBackgrounds` has the same interface with synthetic coloured noise and synthetic
chirps (for the tests, which never use real audio).
"""

from __future__ import annotations

import csv
import logging
from collections import OrderedDict
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

log = logging.getLogger(__name__)

_YH_WORDS = ("citrinella", "goldammer", "yellowhammer")
_SKIP_PREFIXES = ("nes8010_uk_xc/",)
SCREEN_THRESHOLD = 0.1


class BackgroundError(RuntimeError):
    """No usable background recordings."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any file ``soundfile`` reads (wav/mp3/flac/ogg) as float32 mono at ``sample_rate``.

    Damaged files are decoded as far as they go.
    """
    try:
        import soundfile as sf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackgroundError("reading real backgrounds needs the 'soundfile' package") from exc
    blocks = []
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            try:
                for b in fh.blocks(blocksize=65536, dtype="float32", always_2d=True):
                    blocks.append(b.mean(axis=1))
            except (RuntimeError, sf.LibsndfileError) as exc:
                log.warning("%s: decoding stopped early (%s)", path, exc)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise BackgroundError(f"cannot read {path}: {exc}") from exc
    if not blocks:
        raise BackgroundError(f"{path}: nothing decoded")
    x = np.concatenate(blocks)
    if sr != sample_rate:
        g = gcd(int(sr), int(sample_rate))
        x = resample_poly(x, sample_rate // g, sr // g)
    return x.astype(np.float32)


def test_split_files(root: str | Path) -> tuple[list[str], list[str]]:
    """Relative paths of the usable test-split soundscapes and other-species recordings."""
    from model_export.data import real_manifest

    soundscapes, others = [], []
    for r in real_manifest(root):
        if r["split"] != "test" or r["label"] not in ("soundscape", "other"):
            continue
        text = " ".join(str(r.get(k, "")) for k in ("species_or_content", "notes")).lower()
        if any(w in text for w in _YH_WORDS) or r["file"].startswith(_SKIP_PREFIXES):
            continue
        (soundscapes if r["label"] == "soundscape" else others).append(r["file"])
    return sorted(soundscapes), sorted(others)


def screen_birdnet(
    root: str | Path, files: list[str], cache: Path | None = None, progress=None
) -> dict[str, float]:
    """Highest BirdNET yellowhammer score of every file (3-s windows every 1.5 s), cached in
    ``cache`` (CSV ``file,max_yellowhammer``) so a set rebuild does not rerun it."""
    done: dict[str, float] = {}
    if cache is not None and cache.exists():
        with open(cache, newline="") as fh:
            done = {r["file"]: float(r["max_yellowhammer"]) for r in csv.DictReader(fh)}
    todo = [f for f in files if f not in done]
    if todo:
        from model_export.birdnet import BirdNET

        bn = BirdNET(num_threads=1)
        for f in todo:
            try:
                x = load_audio(Path(root) / f, 48000)
                done[f] = float(bn.yellowhammer_score(x, 48000, hop_s=1.5).max())
            except BackgroundError as exc:
                log.warning("screening %s: %s", f, exc)
                done[f] = 1.0  # unreadable: never used
            if progress:
                progress(1)
        if cache is not None:
            tmp = cache.with_name(cache.name + ".part")
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "max_yellowhammer"])
                for k in sorted(done):
                    w.writerow([k, f"{done[k]:.4f}"])
            tmp.replace(cache)
    return {f: done[f] for f in files}


def _crossfade_concat(pieces: list[np.ndarray], fade: int) -> np.ndarray:
    out = pieces[0]
    for p in pieces[1:]:
        k = min(fade, out.size // 2, p.size // 2)
        if k < 2:
            out = np.concatenate([out, p])
            continue
        w = np.sin(0.5 * np.pi * np.linspace(0, 1, k)) ** 2  # equal-power for uncorrelated noise
        mid = out[-k:] * np.sqrt(1 - w) + p[:k] * np.sqrt(w)
        out = np.concatenate([out[:-k], mid, p[k:]])
    return out


class RealBackgrounds:
    """Excerpts of the test split's soundscapes and other-species recordings.

    Parameters
    ----------
    root : path
        A realaudio-style folder with ``manifest.csv``.
    sample_rate : int
        Rate of the returned audio, Hz.
    exclude : iterable of str
        Relative paths to leave out (e.g. failed the BirdNET screen).
    cache_files : int
        Decoded files kept in memory.
    """

    kind = "real"

    def __init__(self, root: str | Path, sample_rate: int, exclude=(), cache_files: int = 64) -> None:
        self.root = Path(root)
        self.sample_rate = int(sample_rate)
        sc, ot = test_split_files(self.root)
        ex = set(exclude)
        self.soundscapes = [f for f in sc if f not in ex]
        self.others = [f for f in ot if f not in ex]
        if not self.soundscapes:
            raise BackgroundError(f"{self.root}: no usable test-split soundscapes")
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_files = cache_files
        self._bad: set[str] = set()

    def _get(self, rel: str) -> np.ndarray | None:
        if rel in self._cache:
            self._cache.move_to_end(rel)
            return self._cache[rel]
        try:
            x = load_audio(self.root / rel, self.sample_rate)
        except BackgroundError as exc:
            log.warning("skipping %s: %s", rel, exc)
            self._bad.add(rel)
            return None
        self._cache[rel] = x
        if len(self._cache) > self._cache_files:
            self._cache.popitem(last=False)
        return x

    def _excerpt(self, files: list[str], rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        for _ in range(30):
            rel = files[int(rng.integers(len(files)))]
            if rel in self._bad:
                continue
            x = self._get(rel)
            if x is None or x.size < self.sample_rate // 2:
                continue
            if x.size >= n:
                i0 = int(rng.integers(0, x.size - n + 1))
                return x[i0 : i0 + n].astype(float), f"{rel}@{i0 / self.sample_rate:.2f}"
            # shorter than asked: loop it with crossfades from random starting points
            pieces, total = [], 0
            fade = self.sample_rate // 5
            while total < n + fade:
                i0 = int(rng.integers(0, max(1, x.size // 2)))
                pieces.append(x[i0:].astype(float))
                total += x.size - i0 - fade
            return _crossfade_concat(pieces, fade)[:n], f"{rel}@loop"
        raise BackgroundError(f"no readable recordings among {len(files)} files below {self.root}")

    def soundscape(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        """``n`` samples of one soundscape (looped when shorter) and ``relpath@start_s``."""
        return self._excerpt(self.soundscapes, rng, n)

    def other(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        """``n`` samples of one other-species recording and its description."""
        if not self.others:
            raise BackgroundError("no other-species recordings available")
        return self._excerpt(self.others, rng, n)

    def bed(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        """A long bed of soundscape excerpts (3-12 s each, 0.3-1 s crossfades) with a slow level
        drift; returns the audio and its pieces as ``(start_s, end_s, description)``."""
        sr = self.sample_rate
        pieces, segs, t = [], [], 0
        fade = int(0.6 * sr)
        while t < n:
            m = int(rng.uniform(3, 12) * sr)
            x, desc = self.soundscape(rng, m + fade)
            x = x * 10 ** (rng.normal(0, 2.0) / 20)
            pieces.append(x)
            segs.append((t / sr, (t + m) / sr, desc))
            t += m
        bed = _crossfade_concat(pieces, fade)[:n]
        if bed.size < n:
            bed = np.pad(bed, (0, n - bed.size))
        return bed, segs


class NoiseBackgrounds:
    """Synthetic stand-in for :class:`RealBackgrounds` (tests, or no real audio at hand):
    pink-ish noise with a random tilt as "soundscape", trains of short chirps as "other"."""

    kind = "synthetic"

    def __init__(self, sample_rate: int, level_db: float = -50.0) -> None:
        self.sample_rate = int(sample_rate)
        self.level_db = float(level_db)
        self.soundscapes = ["synthetic:noise"]
        self.others = ["synthetic:chirps"]

    def soundscape(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        from scipy.fft import irfft, rfftfreq

        f = rfftfreq(n, 1.0 / self.sample_rate)
        spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) / np.maximum(f, 50.0) ** (
            rng.uniform(0.4, 0.7)
        )
        x = irfft(spec, n)
        x *= 10 ** (self.level_db / 20) / (np.std(x) or 1.0)
        return x, "synthetic:noise"

    def other(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        sr = self.sample_rate
        x = np.zeros(n)
        t = 0
        while t < n:
            k = int(rng.uniform(0.02, 0.08) * sr)
            f = np.linspace(rng.uniform(2000, 6000), rng.uniform(2000, 6000), k)
            seg = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(k)
            x[t : t + k] += seg[: max(0, min(k, n - t))]
            t += k + int(rng.uniform(0.03, 0.3) * sr)
        return x * 10 ** (self.level_db / 20 + 1), "synthetic:chirps"

    def bed(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        x, desc = self.soundscape(rng, n)
        return x, [(0.0, n / self.sample_rate, desc)]
