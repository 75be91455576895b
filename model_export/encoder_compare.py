"""Comparing encoder alternatives (``yh-model compare``): each variant (architecture and
objective) trained on the same split, one retraining per left-out dialect for the novelty test,
an autoencoder on the embeddings for 2-4-D maps, and the comparison table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_export.encoder_training import train_encoder_impl
from model_export.runkit import dumps, real_folder
from model_export.train_sets import dataset_splits


def compare_encoders(out: Path, epochs, variants: str, leave_outs: str, autoencoder: bool, cache, real,
                     labels_csv, scale, seed) -> dict:  # fmt: skip
    """Train the alternatives (``variants``: comma list of ``arch:objective``), write each
    result and ``summary.json`` into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    variants = [tuple(v.split(":")) for v in variants.split(",") if v]
    for arch, objective in variants:
        res = train_encoder_impl(
            out / f"{arch}-{objective}", cache, real, labels_csv, scale, seed, epochs, objective, arch, None
        )
        rows.append(res)
        (out / f"{arch}-{objective}.json").write_text(dumps(res))
    novelty_rows = []
    for lo in [x for x in leave_outs.split(",") if x]:
        arch, objective = variants[0]
        res = train_encoder_impl(
            out / f"{arch}-{objective}-no{lo}",
            cache,
            real,
            labels_csv,
            scale,
            seed,
            epochs,
            objective,
            arch,
            lo,
        )
        novelty_rows.append(res)
        (out / f"{arch}-{objective}-no{lo}.json").write_text(dumps(res))
    ae = (
        autoencoder_report(
            out / f"{variants[0][0]}-{variants[0][1]}" / "encoder.tflite", cache, real, scale, seed
        )
        if autoencoder and variants
        else None
    )
    summary = {"epochs": epochs, "variants": rows, "novelty": novelty_rows, "autoencoder": ae}
    (out / "summary.json").write_text(dumps(summary))
    return summary


def autoencoder_report(
    encoder_path: Path, cache, real, scale, seed, latent: int = 3, epochs: int = 60
) -> dict:
    """A small dense autoencoder on the embeddings (32 -> 16 -> latent -> 16 -> 32) for 2-4-D
    maps; reports reconstruction on held-out birds and clustering in the latent space."""
    import keras

    from edge.adapters.models.tflite import TFLiteEncoder
    from model_export.evaluate_models import cluster, cluster_scores
    from model_export.synth import DIALECTS

    keras.utils.set_random_seed(seed)
    sets = dataset_splits("encoder", cache, real_folder(real), scale, seed, DIALECTS)
    enc = TFLiteEncoder(encoder_path)
    e_train = np.stack([enc.embed(w.astype(np.float32)) for w in sets["train"][0].x])
    test = sets["test"][0]
    e_test = np.stack([enc.embed(w.astype(np.float32)) for w in test.x])
    d = e_train.shape[1]
    inp = keras.Input((d,))
    z = keras.layers.Dense(16, activation="relu")(inp)
    z = keras.layers.Dense(latent, name="latent")(z)
    h = keras.layers.Dense(16, activation="relu")(z)
    out = keras.layers.Dense(d)(h)
    ae = keras.Model(inp, out)
    ae.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    ae.fit(e_train, e_train, epochs=epochs, batch_size=128, verbose=0)
    rec = ae.predict(e_test, verbose=0)
    cos = np.sum(rec * e_test, 1) / np.linalg.norm(rec, axis=1)
    lat = keras.Model(inp, ae.get_layer("latent").output).predict(e_test, verbose=0)
    return {
        "latent_dims": latent,
        "reconstruction_cosine_mean": round(float(cos.mean()), 4),
        "hdbscan_on_latent": cluster_scores(cluster(lat), test.dialect),
        "hdbscan_on_embedding": cluster_scores(cluster(e_test), test.dialect),
    }


def compare_table(rows, novelty_rows, ae) -> str:
    lines = [
        "| encoder | objective | params | train s | ARI all | NMI all | ARI complete | clusters | 1-NN acc | "
        "centroid acc | head acc | int8 cos |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['arch']} | {r['objective']} | {r['params']} | {r['train_seconds']} | {t['all_songs']['ari']} | "
            f"{t['all_songs']['nmi']} | {t['complete_songs']['ari']} | {t['all_songs']['clusters']} | "
            f"{t['knn1_accuracy']} | {t['centroid_accuracy_seen_dialects']} | {t.get('head_accuracy', '-')} | "
            f"{(r.get('int8_vs_float') or {}).get('cosine_mean', '-')} |"
        )
    if novelty_rows:
        lines += [
            "",
            "| left out | songs | in own clusters (>=90 % pure) | own clusters | noise | mixed with | "
            "same, complete songs only |",
            "|" + "---|" * 7,
        ]
        for r in novelty_rows:
            n, nc = r["test"]["novelty"], r["test"]["novelty_complete_only"]
            lines.append(
                f"| {n['left_out']} | {n['songs']} | {n['fraction_in_own_clusters']} | {n['own_clusters']} | "
                f"{n['fraction_noise']} | {n['mixed_with']} | {nc['fraction_in_own_clusters']} |"
            )
    if ae:
        lines += [
            "",
            f"autoencoder {ae['latent_dims']}-D latent: reconstruction cosine "
            f"{ae['reconstruction_cosine_mean']}; HDBSCAN ARI on latent "
            f"{ae['hdbscan_on_latent']['ari']} vs on embedding {ae['hdbscan_on_embedding']['ari']}",
        ]
    return "\n".join(lines)
