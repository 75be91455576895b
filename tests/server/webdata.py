"""A small server database as researchers would have it: songs of four dialects made by the
project's song generator, their real log-mel spectrograms and real embeddings from the shipped
encoder, sent through the ingest's decode path from three placed recorders (one of which moved),
a few audio clips uploaded in pieces, labels for some songs, and a cluster run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import wave
from pathlib import Path

import numpy as np

from edge.contract import ClipChunk, Deployment, Detection, Spectrogram, Stats, detection_id
from server.clustering import ClusterParams, run_clustering
from server.ingest import Message, MessageHandler
from server.storage.sqlite import SqliteStorage

DIALECTS = ("XlB", "BC", "BE", "BhBl")
DEVICES = {  # device -> (latitude, longitude, site)
    "yh-brno-1": (49.2100, 16.5900, "Brno, Kraví hora"),
    "yh-brno-2": (49.1700, 16.6400, "Brno, Bílovice"),
    "yh-jihlava-1": (49.4000, 15.5900, "Jihlava, pond"),
}
MOVED = ("yh-brno-2", (49.1500, 16.7000, "Brno, Mokrá"))  # its first deployment, before the move
T0 = 1_746_250_000.0  # 2025-05-03
SR = 24000


def _wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def make_songs(per_dialect: int = 12, seed: int = 7) -> list[tuple[Detection, str, np.ndarray]]:
    """``(detection, dialect, audio)`` for ``per_dialect`` songs of each dialect (two birds each)."""
    from edge.adapters.models.tflite import TFLiteEncoder
    from edge.core.frontend import FrontendConfig, logmel
    from model_export.synth.song import make_bird, render_song

    rng = np.random.default_rng(seed)
    enc = TFLiteEncoder(None)
    fe: FrontendConfig = enc.frontend
    margin = int(round(0.3 * SR))
    out = []
    devices = list(DEVICES)
    i = 0
    for dialect in DIALECTS:
        birds = [make_bird(dialect, rng, bird_id=b) for b in range(2)]
        for k in range(per_dialect):
            audio, ev = render_song(birds[k % 2], rng, SR, song_type=0, complete=True)
            x = np.concatenate([np.zeros(margin, np.float32), audio, np.zeros(margin, np.float32)])
            x += (3e-3 * rng.standard_normal(x.size)).astype(np.float32)  # a field's noise floor
            frames = logmel(x, fe)
            onset, offset = margin / SR + ev.onset_s, margin / SR + ev.offset_s
            end_frame = int(offset * fe.frame_rate) + 5
            window = frames[max(0, end_frame - enc.window_frames) : end_frame]
            if window.shape[0] < enc.window_frames:
                window = np.pad(window, ((enc.window_frames - window.shape[0], 0), (0, 0)), mode="edge")
            emb = enc.embed(window.astype(np.float32))
            lo = max(0, int((onset - 0.3) * fe.frame_rate))
            spec = Spectrogram.quantise(frames[lo : end_frame + 10], fe.frame_rate, lo / fe.frame_rate - onset,
                                        fe.fmin, fe.fmax, 1.5)  # fmt: skip
            dev = devices[i % len(devices)]
            lat, lon, _ = DEVICES[dev]
            if dev == MOVED[0] and k < 3:  # the first songs of the moved device: its earlier place
                lat, lon, _ = MOVED[1]
            start = T0 + 3600 * (i % 30) + 17.0 * i + (86400 * 4 if i % 5 == 0 else 0)
            d = Detection(
                id=detection_id(dev, "mic:test", onset, offset, start, enc.version), device_id=dev,
                start_time=start, end_time=start + ev.offset_s - ev.onset_s, embedding=emb.astype(np.float32),
                encoder_version=enc.version, clock_synced=True, score=0.95, duration_s=round(ev.offset_s - ev.onset_s, 3),
                snr_db=30.0, refined=True, onset_s=round(onset, 3), offset_s=round(offset, 3), detector_version="det-test",
                source="mic:test", created_at=start + 3.0, latitude=lat, longitude=lon, spectrogram=spec,
            )  # fmt: skip
            out.append((d, dialect, x))
            i += 1
    return out


def build(db: Path, per_dialect: int = 12, clips: int = 8, label_every: int = 3) -> dict:
    """Fill a server database at ``db``; returns what went in (ids by dialect, clip ids, devices)."""
    songs = make_songs(per_dialect)
    storage = SqliteStorage(db)
    h = MessageHandler(storage)
    now = time.time()
    msgs = []
    for dev, (lat, lon, site) in DEVICES.items():
        dep = Deployment(
            latitude=lat, longitude=lon, elevation_m=230.0, site=site, microphone="AudioMoth USB"
        )
        body = {"store": {"unsynced": 3}, "deployment": dep.to_dict()}
        msgs.append(Message(f"yh/v1/{dev}/status", b"online"))
        msgs.append(Message(f"yh/v1/{dev}/stats", Stats(dev, now, body).to_payload()))
    msgs += [Message(f"yh/v1/{d.device_id}/detections", d.to_payload()) for d, _, _ in songs]
    h.handle(msgs)
    with_clips = []
    for d, _, audio in songs[1::5][:clips]:  # songs of every device and dialect
        data = _wav_bytes(audio)
        pieces = ClipChunk.split(d.device_id, d.id, "wav", SR, data, 16 * 1024)
        h.handle([Message(f"yh/v1/{d.device_id}/clip", p.to_payload()) for p in pieces])
        with_clips.append(d.id)
    storage.put_labels([{"detection_id": d.id, "label": lab, "origin": "fieldwork.csv", "imported_at": now,
                         "labeled_by": "fieldwork.csv"} for j, (d, lab, _) in enumerate(songs) if j % label_every == 0])  # fmt: skip
    run = run_clustering(storage, None, ClusterParams(min_cluster_size=5, reduce_dim=8, map_method="tsne"))
    storage.close()
    return {"run_id": run["run_id"], "songs": [(d.id, lab) for d, lab, _ in songs], "clips": with_clips,
            "devices": list(DEVICES), "n_clusters": run["n_clusters"]}  # fmt: skip


def replace_device(d: Detection, **kw) -> Detection:
    return dataclasses.replace(d, **kw)


if __name__ == "__main__":  # python -m tests.server.webdata OUT.sqlite: a database to look at
    import sys

    print(json.dumps({k: v for k, v in build(Path(sys.argv[1])).items() if k != "songs"}, indent=1))
