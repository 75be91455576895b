"""Yellowhammer dialect monitor: the edge (Raspberry Pi) runtime."""

import os

__version__ = "0.1.0"

# The runtime multiplies small matrices (50 frames x 200 bins x 64 mels) a few times a second;
# a multi-threaded BLAS spends more time waking its threads than computing (measured 2-4x
# slower on 2 cores). Single-threaded unless the user says otherwise; set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
