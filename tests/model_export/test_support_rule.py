"""The support-window rule as `yh-model support-threshold` tabulates it: false runs on negative
files and songs found on a valsynth set, at the manifest's and at other single-window thresholds."""

from pathlib import Path

from model_export.detector.support import false_runs, rule_table, runs, songs_found


def _ws(*probs, start=0.0):
    return [(start + i, start + i + 1.0, p) for i, p in enumerate(probs)]


NEG = {
    "a.wav": _ws(0.1, 0.99, 0.2, 0.91, 0.93, 0.1),  # one single high window, one supported pair
    "b.wav": _ws(0.97, 0.5, 0.985),  # a lone 0.97 (below both) and a lone 0.985
}


def test_runs_split_at_windows_below_the_lowest_passing_score():
    assert runs(NEG["a.wav"], 0.9) == [[0.99], [0.91, 0.93]]


def test_false_runs_count_single_windows_at_the_threshold_and_supported_pairs():
    assert false_runs(NEG, 0.98, None) == 2  # 0.99 and 0.985
    assert false_runs(NEG, 0.98, 0.9) == 3  # + the pair 0.91, 0.93
    assert false_runs(NEG, 0.988, 0.9) == 2  # 0.985 no longer passes alone
    assert false_runs(NEG, 1.01, 0.9) == 1  # pairs only


def test_songs_found_needs_a_passing_window_that_covers_the_song(tmp_path):
    set_dir = Path("S")
    truth = [
        {"file": "x.wav", "onset_s": "1.2", "offset_s": "2.8", "complete": "1"},
        {"file": "y.wav", "onset_s": "0.0", "offset_s": "1.0", "complete": "0"},
    ]
    ws = {"S/x.wav": _ws(0.1, 0.92, 0.95, 0.1), "S/y.wav": _ws(0.99, 0.1)}
    assert songs_found(ws, truth, set_dir, 0.98, None) == (0.5, 0.0)  # only y's lone 0.99
    assert songs_found(ws, truth, set_dir, 0.98, 0.9) == (1.0, 1.0)  # x's supported pair too
    table = rule_table(NEG, [(set_dir, truth, ws)], 0.98)
    assert [r["support_threshold"] for r in table][:2] == [None, 0.7]
    row = next(r for r in table if r["support_threshold"] == 0.9)
    assert (row["val_false_runs"], row["S_songs_found"], row["S_complete_found"]) == (3, 1.0, 1.0)


def test_candidates_at_or_above_the_threshold_are_left_out_of_the_table():
    table = rule_table(NEG, [], 0.9)
    assert [r["support_threshold"] for r in table] == [None, 0.7, 0.75, 0.8, 0.85, 0.88]


def test_a_bad_threshold_list_is_a_one_line_error(tmp_path):
    from click.testing import CliRunner

    from model_export.detector.support import support_threshold_cmd

    for bad in ("0.99,abc", "0.99,2"):
        res = CliRunner().invoke(support_threshold_cmd, ["--models", str(tmp_path), "--thresholds", bad])
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert "--thresholds" in res.output
