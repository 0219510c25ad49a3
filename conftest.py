"""Settings for every test run, notebooks included (their kernels inherit the environment)."""

import os

# Tests never touch the network and run the notebooks' fast mode.
os.environ.setdefault("CVAE_OFFLINE", "1")
os.environ.setdefault("CVAE_FAST", "1")
