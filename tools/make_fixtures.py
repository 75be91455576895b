#!/usr/bin/env python3
"""Regenerate the audio-format fixtures in tests/fixtures/audio/.

Good files cover every format the reader accepts (PCM 8/16/24/32-bit, float 32/64-bit,
WAVE_FORMAT_EXTENSIBLE, mono/stereo/multichannel, several sample rates); broken files cover
everything it must refuse. Content is a 5 kHz tone plus a 3->7 kHz sweep, 0.5 s, made here
(never cut from real recordings). Deterministic: rerunning rewrites identical bytes.

    python tools/make_fixtures.py [OUT_DIR]
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

DURATION = 0.5


def signal(rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(rate * DURATION)) / rate
    tone = 0.4 * np.sin(2 * np.pi * 5000 * t)
    f = 3000 + 4000 * t / DURATION
    sweep = 0.2 * np.sin(2 * np.pi * np.cumsum(f) / rate)
    x = tone + sweep
    return np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)


def encode(x: np.ndarray, bits: int, is_float: bool) -> bytes:
    if is_float:
        return x.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.round(x * 127 + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return np.round(x * 32767).astype("<i2").tobytes()
    if bits == 24:
        v = np.round(x * 8388607).astype(np.int32).reshape(-1)
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], 1).astype(np.uint8).tobytes()
    return np.round(x * 2147483647).astype("<i4").tobytes()


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, extensible_sub: int | None = None) -> bytes:
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    if extensible_sub is not None:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", extensible_sub) + guid_tail
    return b"fmt " + struct.pack("<I", len(body)) + body


def riff(*chunks: bytes, form: bytes = b"WAVE", magic: bytes = b"RIFF") -> bytes:
    body = form + b"".join(chunks)
    return magic + struct.pack("<I", len(body)) + body


def data_chunk(payload: bytes, declared: int | None = None) -> bytes:
    size = len(payload) if declared is None else declared
    pad = b"\x00" if len(payload) % 2 else b""
    return b"data" + struct.pack("<I", size) + payload + pad


def wav(rate: int, channels: int, bits: int, is_float: bool = False, extensible: bool = False) -> bytes:
    x = signal(rate, channels)
    tag = 0xFFFE if extensible else (3 if is_float else 1)
    sub = (3 if is_float else 1) if extensible else None
    return riff(fmt_chunk(tag, channels, rate, bits, sub), data_chunk(encode(x, bits, is_float)))


GOOD = {
    "pcm16_mono_24k.wav": dict(rate=24000, channels=1, bits=16),
    "pcm16_stereo_48k.wav": dict(rate=48000, channels=2, bits=16),
    "pcm24_mono_44k1.wav": dict(rate=44100, channels=1, bits=24),
    "pcm32_mono_32k.wav": dict(rate=32000, channels=1, bits=32),
    "pcm8_mono_22k05.wav": dict(rate=22050, channels=1, bits=8),
    "float32_mono_16k.wav": dict(rate=16000, channels=1, bits=32, is_float=True),
    "float64_stereo_96k.wav": dict(rate=96000, channels=2, bits=64, is_float=True),
    "extensible_pcm24_4ch_48k.wav": dict(rate=48000, channels=4, bits=24, extensible=True),
    "extensible_float32_mono_48k.wav": dict(rate=48000, channels=1, bits=32, is_float=True, extensible=True),
}


def broken() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the problem the reader must name)."""
    good = wav(24000, 1, 16)
    pcm = encode(signal(24000, 1), 16, False)
    nan = signal(24000, 1).astype("<f4")
    nan[100, 0] = np.nan
    inf = signal(24000, 1).astype("<f4")
    inf[5, 0] = np.inf
    fmt16 = fmt_chunk(1, 1, 24000, 16)
    return {
        "empty.wav": (b"", "empty"),
        "truncated_header.wav": (good[:7], "truncated"),
        "truncated_data.wav": (good[: len(good) // 2], "truncated"),
        "not_riff.wav": (b"ID3\x03\x00\x00\x00" + b"\x00" * 200, "not a WAV"),
        "text_file.wav": (b"this is not audio at all, just text\n" * 10, "not a WAV"),
        "mp3_codec.wav": (riff(fmt_chunk(0x55, 1, 24000, 16), data_chunk(pcm)), "unsupported codec MP3"),
        "alaw_codec.wav": (riff(fmt_chunk(6, 1, 24000, 8), data_chunk(pcm)), "unsupported codec A-law"),
        "adpcm_codec.wav": (
            riff(fmt_chunk(0x11, 1, 24000, 4), data_chunk(pcm)),
            "unsupported codec IMA ADPCM",
        ),
        "nan_samples.wav": (riff(fmt_chunk(3, 1, 24000, 32), data_chunk(nan.tobytes())), "NaN"),
        "inf_samples.wav": (riff(fmt_chunk(3, 1, 24000, 32), data_chunk(inf.tobytes())), "NaN or infinite"),
        "absurd_rate.wav": (riff(fmt_chunk(1, 1, 7, 16), data_chunk(pcm)), "absurd sample rate"),
        "huge_rate.wav": (riff(fmt_chunk(1, 1, 4_000_000_000, 16), data_chunk(pcm)), "absurd sample rate"),
        "zero_channels.wav": (riff(fmt_chunk(1, 0, 24000, 16), data_chunk(pcm)), "absurd channel count"),
        "many_channels.wav": (riff(fmt_chunk(1, 500, 24000, 16), data_chunk(pcm)), "absurd channel count"),
        "bits12.wav": (riff(fmt_chunk(1, 1, 24000, 12), data_chunk(pcm)), "unsupported 12-bit"),
        "no_data_chunk.wav": (riff(fmt16), "no 'data' chunk"),
        "no_fmt_chunk.wav": (riff(data_chunk(pcm)), "before the 'fmt '"),
        "empty_data.wav": (riff(fmt16, data_chunk(b"")), "empty"),
        "huge_declared_size.wav": (riff(fmt16, data_chunk(pcm, declared=0x7FFFFFF0)), "truncated"),
        "odd_data_size.wav": (riff(fmt16, data_chunk(pcm[:-1])), "not a whole number"),
        "short_fmt.wav": (
            riff(b"fmt " + struct.pack("<I", 8) + b"\x01\x00\x01\x00\xc0\x5d\x00\x00", data_chunk(pcm)),
            "malformed 'fmt '",
        ),
        "rifx_bigendian.wav": (riff(fmt16, data_chunk(pcm), magic=b"RIFX"), "unsupported container RIFX"),
        "bad_block_align.wav": (
            riff(struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 2, 24000, 96000, 3, 16), data_chunk(pcm)),
            "inconsistent header",
        ),
    }


def main(out: Path) -> None:
    good_dir, bad_dir = out / "good", out / "broken"
    good_dir.mkdir(parents=True, exist_ok=True)
    bad_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in GOOD.items():
        (good_dir / name).write_bytes(wav(**spec))
    lines = ["file,problem"]
    for name, (data, problem) in broken().items():
        (bad_dir / name).write_bytes(data)
        lines.append(f"{name},{problem}")
    (bad_dir / "expected_errors.csv").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(GOOD)} good and {len(lines) - 1} broken fixtures under {out}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
    )
