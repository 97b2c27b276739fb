"""OwnLens ML: feature-store-backed models for a media analytics platform."""

import os

# XGBoost and scikit-learn's histogram trees and KMeans run on GNU OpenMP, whose threads
# spin at the end of every parallel region waiting for the others. On a machine whose cores
# other processes also want (a shared host, a CI runner, tests in parallel), a spinning
# thread holds a core its partner needs, and the small fits here become 10-100x slower
# (the article_performance oracle's 2,000-row fit: 0.3 s passive, 12-44 s spinning, on two
# busy cores). Passive waiting costs microseconds per region on an idle machine. libgomp
# reads this once, when it is loaded, so it is set before any of them is imported; an
# explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
