#!/usr/bin/env python3
"""Withheld-label novelty on a valsynth set through the server.

Usage: ``python tools/valsynth_novelty.py SET_DIR WORK_DIR DIALECT [DIALECT ...]`` (``none``: hide
nothing). ``WORK_DIR`` holds ``edge.sqlite``/``detections.csv`` of ``tools/eval_valsynth.py --work``
(analysed with the models to test). For each dialect: the edge DB is imported into a temporary
server DB, every detected song is labelled with the dialect of the song it overlaps most except the
hidden dialect's and the incomplete ones, ``run_clustering`` runs as ``yh-server cluster`` does,
and the novelty report's candidates are printed with the true mix of their songs (``?``: a
detection on no song). The encoder saw the hidden dialect in training: this tests the server's
novelty rule with the labels withheld, not an encoder trained without the dialect.
"""

import csv
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.clustering import ClusterParams, run_clustering
from server.ingest import import_edge_db
from server.labels import import_labels
from server.storage.sqlite import SqliteStorage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_valsynth as ev

from model_export.valsynth.sets import load_truth

set_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
truth = load_truth(set_dir / "truth.csv")
dets = ev.run_analyze(set_dir / "audio", work, None, False)
matched, _ = ev.match(truth, dets)
lab = {}
for s in matched:
    if s["best"] is not None:
        lab[s["best"]["id"]] = s["dialect"] if s["complete"] else "incomplete"
for hide in sys.argv[3:]:
    with tempfile.TemporaryDirectory() as tmp:
        st = SqliteStorage(Path(tmp) / "s.sqlite")
        import_edge_db(st, work / "edge.sqlite")
        with open(Path(tmp) / "l.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["detection_id", "label"])
            for i, dialect in lab.items():
                if dialect not in (hide, "incomplete"):
                    w.writerow([i, dialect])
        import_labels(st, Path(tmp) / "l.csv")
        s = run_clustering(st, None, ClusterParams(min_cluster_size=15))
        members = st.run_members(s["run_id"])
        st.close()
    cl = {m["detection_id"]: m["cluster"] for m in members}
    n_hidden = sum(1 for i, dialect in lab.items() if dialect == hide and i in cl)
    out = []
    for c in s["novelty"]["candidate_new_dialects"]:
        ids = [m["detection_id"] for m in members if m["cluster"] == c["cluster"]]
        if "subgroup" in c:
            ids = c.get("detection_ids", ids)  # an under-labelled part: its own songs
        cnt = Counter(lab.get(i, "?") for i in ids)
        out.append(
            {
                "cluster": c["cluster"],
                "sub": c.get("subgroup"),
                "size": c["size"],
                "mix": dict(cnt.most_common(4)),
            }
        )
    print(hide, "hidden detected songs", n_hidden, "candidates", json.dumps(out))
