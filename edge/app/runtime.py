"""Process-wide settings of the recorder's entry points (imported first by them).

The runtime multiplies small matrices (50 frames x 200 bins x 64 mels) a few times a second;
a multi-threaded BLAS spends more time waking its threads than computing (measured 2-4x
slower on 2 cores). The recorder's processes are single-threaded unless the user says
otherwise. This must run before numpy is imported, so it lives in the entry points, never in
a package ``__init__`` that the server (which wants every core for clustering) also imports.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
