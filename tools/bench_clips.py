"""What a clip upload costs the recorder: CPU ms per clip and bytes, WAV and (where soundfile is
installed) FLAC.

    python tools/bench_clips.py [--clips 20] [--rate 48000] [FILE.wav|mp3 ...]

For each codec: the clip saver's work per song (resampling a 48-kHz stream to 24 kHz, encoding,
writing), queueing it (sha256 of the file, in the store's transaction), and uploading it through
a real mosquitto on a free loopback port (pieces, PUBACKs, the store's bookkeeping; process CPU
over the upload, paho's network thread included). Songs: the generated songs of the test
fixtures, or the given files cut into 3-s pieces. Benchmarks are not tests: figures vary with the
machine and its load; compare codecs within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edge.adapters.store.clips import ClipSaver, UploadPolicy, flac_available  # noqa: E402
from edge.adapters.store.sqlite import SqliteStore  # noqa: E402


def songs(files: list[Path], n: int, rate: int) -> list[np.ndarray]:
    from edge.adapters.audio.wavfile import read_wav, to_mono
    from edge.core.resample import resample

    srcs = files or sorted((ROOT / "tests/fixtures/synth").glob("song_*.wav"))
    out = []
    for f in srcs:
        if f.suffix == ".wav":
            x, sr = read_wav(f)
            x = to_mono(x)
        else:
            import soundfile

            x, sr = soundfile.read(str(f), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
        if sr != rate:
            x = resample(x.astype(np.float32), sr, rate)
        step = 3 * rate  # a 2.5-s song with the saver's 0.5-s pads is about 3 s
        out += [x[i : i + step] for i in range(0, max(1, len(x) - step + 1), step)] if len(x) > step else [x]
    return [out[i % len(out)] for i in range(n)]


def run(codec: str, clips: list[np.ndarray], rate: int, broker) -> dict:
    from edge.adapters.mqtt.publisher import MqttPublisher
    from edge.core.config import ClipsConfig, Config, DeviceConfig, MqttConfig, StoreConfig
    from tests.sync.helpers import make_detection

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        saver = ClipSaver(tmp / "clips", 1 << 30, codec=codec)
        store = SqliteStore(tmp / "e.sqlite", upload_policy=UploadPolicy(10**6), clip_chunk_bytes=32 * 1024)
        enc, queue = [], []
        for i, x in enumerate(clips):
            d = make_detection("bench", i)
            t = time.thread_time()
            path = saver.save(d.id, x, rate, d.start_time)
            t1 = time.thread_time()
            store.add(d, clip_path=path)
            t2 = time.thread_time()
            enc.append(t1 - t)
            queue.append(t2 - t1)  # includes storing the detection row itself
        store.mark_synced(
            [d["detection_id"] for d in store.pending_clip_uploads(10**6)]
        )  # only clips to send
        sizes = [u["size"] for u in store.pending_clip_uploads(10**6)]
        pieces = sum(u["n_chunks"] for u in store.pending_clip_uploads(10**6))
        cfg = Config(device=DeviceConfig(id="bench", data_dir=str(tmp)), store=StoreConfig(path=str(tmp / "e.sqlite")),
                     clips=ClipsConfig(upload=True, daily_mb=1e6),
                     mqtt=MqttConfig(enabled=True, host=broker.host, port=broker.port, digest_interval_s=0))  # fmt: skip
        pub = MqttPublisher(cfg, store)
        c0, w0 = time.process_time(), time.perf_counter()
        summary = pub.publish_pending(timeout=300)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        assert summary["drained"] and store.clip_counts()["uploaded"] == len(clips), summary
        store.close()
    return {"codec": codec, "clips": len(clips), "encode_ms": 1e3 * statistics.median(enc),
            "queue_ms": 1e3 * statistics.median(queue), "upload_ms": 1e3 * cpu / len(clips),
            "upload_wall_s": wall, "bytes": statistics.mean(sizes),
            "wire_bytes": (pub.counters["clip_bytes"]) / len(clips), "pieces": pieces / len(clips)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument(
        "--rate", type=int, default=48000, help="the stream's rate (48 kHz: what USB microphones give)"
    )
    args = ap.parse_args()
    from tests.broker import MosquittoBroker

    clips = songs(args.files, args.clips, args.rate)
    codecs = ["wav"] + (["flac"] if flac_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "mosquitto").start()
        try:
            rows = [run(c, clips, args.rate, broker) for c in codecs]
        finally:
            broker.stop()
    print(
        f"{args.clips} clips of {len(clips[0]) / args.rate:.1f} s from a {args.rate} Hz stream, written at 24 kHz:"
    )
    print(f"{'codec':6} {'encode ms':>10} {'queue ms':>9} {'upload CPU ms':>14} {'total ms':>9} {'file B (mean)':>14} "
          f"{'on wire B':>10} {'pieces':>7}")  # fmt: skip
    for r in rows:
        total = r["encode_ms"] + r["queue_ms"] + r["upload_ms"]
        print(f"{r['codec']:6} {r['encode_ms']:10.2f} {r['queue_ms']:9.2f} {r['upload_ms']:14.2f} {total:9.2f} "
              f"{r['bytes']:14.0f} {r['wire_bytes']:10.0f} {r['pieces']:7.1f}")  # fmt: skip
    if "flac" not in codecs:
        print("(FLAC not measured: the soundfile package is not installed)")


if __name__ == "__main__":
    main()
