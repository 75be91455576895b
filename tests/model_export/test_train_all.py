"""``yh-model train all``: the recipes it runs are the shipped models' own, and ``--labels`` adds a
researcher's recordings to both models' train/val sets (never their test rows)."""

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from model_export.geometry import DET_FRAMES, EDGE_MODELS, ENC_FRAMES
from model_export.train_all import SHIPPED_RECIPE, recipe_params, train_all_cmd


def _reproduce_params(command, line: str) -> dict:
    """The parameters of ``command`` given on a manifest's ``reproduce`` line (its own notes in
    brackets dropped), and the command's defaults."""
    args = shlex.split(line.split("  (")[0])
    name = args.index(command.name)
    ctx = command.make_context(command.name, args[name + 1 :])
    defaults = command.make_context(command.name, ["--out", "x"] if _needs_out(command) else []).params
    return ctx.params, defaults


def _needs_out(command) -> bool:
    return any(p.name == "out" and p.required for p in command.params)


@pytest.mark.parametrize(
    ("model", "step"),
    [("detector", "detector-real"), ("encoder", "encoder-dr")],
)
def test_train_all_runs_the_recipe_each_shipped_model_came_from(model, step):
    from model_export.detector.cli import train_detector_real_cmd
    from model_export.encoder_dr import train_encoder_dr_cmd

    command = {"detector-real": train_detector_real_cmd, "encoder-dr": train_encoder_dr_cmd}[step]
    manifest = json.loads((EDGE_MODELS / f"{model}.json").read_text(encoding="utf-8"))
    if shlex.split(manifest["reproduce"])[1:3] == [
        "train",
        "all",
    ]:  # made by train all itself: its recipe as is
        given, defaults = _reproduce_params(train_all_cmd, manifest["reproduce"])
        assert {k: v for k, v in given.items() if v != defaults[k]}.keys() <= {"out", "cache"}
        return
    given, defaults = _reproduce_params(command, manifest["reproduce"])
    shipped = {k: v for k, v in given.items() if v != defaults[k] and k not in ("out", "cache")}
    assert shipped == SHIPPED_RECIPE[step], f"{model}.json was made by {manifest['reproduce']!r}"


def test_the_shipped_encoder_has_a_complete_head_fitted_by_the_command_train_all_runs_last():
    head = json.loads((EDGE_MODELS / "encoder.json").read_text(encoding="utf-8"))["complete_head"]
    assert head["reproduce"].startswith(("yh-model complete-head", "yh-model train all"))
    assert "wide-glide" in head["fitted_on"] and SHIPPED_RECIPE["encoder-dr"]["synth_variety"] == "wide-glide"


def test_a_quicker_run_overrides_only_what_it_names():
    p = recipe_params("encoder-dr", epochs=1, scale=None, seed=3)
    assert p == {"epochs": 1, "synth_variety": "wide-glide", "seed": 3}


def _labels_with_splits(fixtures_dir: Path, tmp_path: Path) -> Path:
    with open(fixtures_dir / "synth" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    split = {"song_XlB.wav": "val", "song_BC.wav": "test"}
    out = tmp_path / "own.csv"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0].keys(), "split"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {**r, "file": str(fixtures_dir / "synth" / r["file"]), "split": split.get(r["file"], "train")}
            )
    return out


def test_own_recordings_give_detector_windows_to_train_and_val_but_never_from_test_rows(
    fixtures_dir, tmp_path
):
    from model_export.detector.fit import SHARES, strata
    from model_export.detector.run import own_windows

    own = own_windows(_labels_with_splits(fixtures_dir, tmp_path))
    assert set(own) == {"train", "val"}
    for ws in own.values():
        assert ws.x.shape[1:] == (DET_FRAMES, 64) and set(np.unique(ws.y)) <= {0.0, 1.0}
        assert set(strata(ws.kind, ws.y).tolist()) <= set(SHARES)
    assert (
        own["val"].y.sum() > 0
        and (own["train"].kind == "own_pos").sum() > (own["val"].kind == "own_pos").sum()
    )
    assert own_windows(None) == {}


def test_own_recordings_join_the_encoders_train_and_val_sets(fixtures_dir, tmp_path):
    from model_export.data import EncoderSet
    from model_export.train_sets import add_labelled

    def empty():
        return EncoderSet(
            np.zeros((0, ENC_FRAMES, 64), np.float16), np.array([], str), np.array([], int), np.zeros(0)
        )

    # encoder-dr's route: only train and val are held, so the CSV's test rows have nowhere to go
    own = add_labelled(
        {"train": (empty(), {}), "val": (empty(), {})}, _labels_with_splits(fixtures_dir, tmp_path), "encoder"
    )
    (train, tsum), (val, vsum) = own["train"], own["val"]
    assert val.dialect.tolist() == ["XlB"] and vsum["labelled_songs"] == 1
    # 12 songs: song_XlB.wav to val, song_BC.wav (test) left out, the other 10 to train
    assert tsum["labelled_songs"] == len(train.dialect) == 10 and "XsB" in train.dialect.tolist()
    assert train.x.shape[1:] == (ENC_FRAMES, 64)


def test_the_shipped_detector_has_the_support_threshold_its_rule_chose():
    m = json.loads((EDGE_MODELS / "detector.json").read_text(encoding="utf-8"))
    chosen = m["support_threshold_chosen"]
    assert chosen["reproduce"].startswith(("yh-model support-threshold", "yh-model train all"))
    base = chosen["table"][0]
    assert base["support_threshold"] is None
    # the rule: the lowest candidate that adds no false run on the validation files
    ok = [
        r["support_threshold"] for r in chosen["table"][1:] if r["val_false_runs"] <= base["val_false_runs"]
    ]
    assert m["support_threshold"] == min(ok) < m["threshold"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("file,onset_s\nx.wav,1\n", "lacks columns ['dialect', 'offset_s']"),
        ("file,onset_s,offset_s,dialect\n", "no songs"),
        ("file,onset_s,offset_s,dialect\nSONG,one,2,XlB\n", "must be numbers"),
        ("file,onset_s,offset_s,dialect\nSONG,2,1,XlB\n", "need 0 <= onset_s < offset_s"),
        ("file,onset_s,offset_s,dialect,split\nSONG,1,2,XlB,holdout\n", "split must be"),
        ("file,onset_s,offset_s,dialect\nmissing.wav,1,2,XlB\n", "missing.wav"),
        ("file,onset_s,offset_s,dialect\nBROKEN,1,2,XlB\n", "not_riff.wav"),
    ],
)
def test_a_bad_label_csv_is_refused_before_training_with_one_line(fixtures_dir, tmp_path, text, fragment):
    from model_export.labelled import check_labels

    song = fixtures_dir / "synth" / "song_XlB.wav"
    broken = fixtures_dir / "audio" / "broken" / "not_riff.wav"
    path = tmp_path / "labels.csv"
    path.write_text(text.replace("SONG", str(song)).replace("BROKEN", str(broken)), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        check_labels(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert check_labels(fixtures_dir / "synth" / "labels.csv") == fixtures_dir / "synth" / "labels.csv"
