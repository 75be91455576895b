"""model_export.eval_real runs the recorder's own pipeline (build_pipeline, real int8 models) on a
clip: the songs it finds in the demo recording are the ones `yh-edge analyze` finds (it once built
its own pipeline with a sink the pipeline no longer fed, and `yh-model eval-real-songs` crashed)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edge.adapters.models.tflite import MODELS_DIR, TFLiteDetector, TFLiteEncoder
from edge.app.cli import main
from model_export.eval_real import run_pipeline
from model_export.synth import load_audio

DEMO = Path(__file__).resolve().parents[2] / "edge" / "data" / "demo.wav"


def test_run_pipeline_finds_the_songs_analyze_finds():
    det = TFLiteDetector(MODELS_DIR / "detector.tflite")
    enc = TFLiteEncoder(MODELS_DIR / "encoder.tflite")
    audio = load_audio(DEMO, det.frontend.sample_rate)
    got = run_pipeline(audio, det, enc, det.frontend, "demo")
    r = CliRunner().invoke(
        main, ["-q", "analyze", "--no-store", "--no-progress", "--format", "csv", str(DEMO)]
    )
    assert r.exit_code == 0, r.output
    rows = [ln.split(",") for ln in r.stdout.strip().splitlines()[1:]]
    assert len(got) == len(rows) == 7  # the demo's 7 songs
    for d, row in zip(got, rows, strict=True):
        assert abs(d.onset_s - float(row[1])) < 0.05 and abs(d.offset_s - float(row[2])) < 0.05
