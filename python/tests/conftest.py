import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def clustered(n, d, seed, offset=0.3):
    """Anisotropic data with a common offset and a few directions of large
    variance: what the trainer's decisions are about (not isotropic noise)."""
    rs = np.random.RandomState(seed)
    scales = np.linspace(2.0, 0.2, d).astype("float32")
    basis = np.linalg.qr(np.random.RandomState(99).randn(d, d))[0]
    x = rs.randn(n, d) * scales @ basis.T + offset
    return x.astype("float32")


@pytest.fixture
def data():
    """d = 36 (not a multiple of 8: the planes carry padding bits)."""
    d = 36
    return d, clustered(600, d, 1), clustered(20, d, 2)


@pytest.fixture
def run_py():
    """Runs code in a fresh interpreter (same PYTHONPATH); CompletedProcess."""
    def run(code, flags=()):
        return subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)],
                              capture_output=True, text=True,
                              env=dict(os.environ), timeout=300)
    return run
