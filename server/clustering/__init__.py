"""Dialect discovery: HDBSCAN per encoder version, map coordinates, metrics, novelty report.

Embeddings of different encoder versions live in different spaces and are never clustered
together: every run takes exactly one ``encoder_version``.

Pipeline of one run:

1. L2-normalise (again; cheap insurance), so Euclidean distance is a monotone function of the
   cosine distance the encoder was trained with;
2. PCA to ``reduce_dim`` components (HDBSCAN's density estimates degrade in high dimension, and
   the few dialect directions carry almost all the variance);
3. HDBSCAN (scikit-learn) -> cluster id (``-1`` = outlier) and membership strength
   (``probabilities_``). scikit-learn's HDBSCAN builds its spanning tree in O(n^2) time, so above
   ``max_fit`` points it is fitted on a seeded random sample and every other point takes the
   cluster that holds the majority of its ``min_samples`` nearest fitted neighbours (its
   membership strength = their mean strength times the vote share), or is an outlier when no
   cluster has a majority (its neighbourhood is mostly outliers or split);
4. 2-D and 3-D map coordinates: PCA (fast, deterministic, fine at 100k points), t-SNE (up to
   20k points; separates clusters that overlap in PCA), UMAP (where the umap-learn package is
   installed), or ``auto``: a t-SNE 2-D map up to ``tsne_max`` songs with a PCA 3-D map, PCA
   above (the CLI's default, ``[cluster] map`` in the server config). The library default stays
   PCA.

A run is stored with its id, time, parameters, software version and metrics; members keep
cluster, probability and map coordinates.
Large runs (``method="prototypes"``, :mod:`.prototypes`): HDBSCAN on k-means prototypes of each
device-day instead of a sample, every song by its nearest prototype with a distance outlier rule,
and the run's model kept so that :func:`assign_new` places songs that arrive between full runs.

Modules: :mod:`.fit` (PCA, quality filter, HDBSCAN, assignment, maps), :mod:`.run` (a stored run),
:mod:`.metrics` (against labels and the previous run), :mod:`.novelty` (candidate new dialects),
:mod:`.text` (terminal output).
"""

from server.clustering.fit import (
    INCOMPLETE_CLUSTER,
    MAP_METHODS,
    TSNE_MAX,
    ClusterParams,
    ClusterResult,
    cluster_embeddings,
    quality_exclusions,
)
from server.clustering.metrics import compare_runs, coverage, evaluate
from server.clustering.novelty import NOVELTY_P, novelty_report
from server.clustering.run import assign_new, run_clustering
from server.clustering.text import format_report
from server.errors import ClusterError

__all__ = ["INCOMPLETE_CLUSTER", "MAP_METHODS", "NOVELTY_P", "TSNE_MAX", "ClusterError", "ClusterParams", "ClusterResult", "assign_new",
           "cluster_embeddings",
           "compare_runs", "coverage", "evaluate", "format_report", "novelty_report", "quality_exclusions",
           "run_clustering"]  # fmt: skip
