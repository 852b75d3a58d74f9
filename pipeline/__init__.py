"""rlvr-pipeline's training library: configs, data, models, rollouts, losses, trainers.

Nothing here imports Prefect; every stage runs alone (`python -m pipeline.trainers.<stage>`).
"""

import os

# OpenMP's default spin-waiting made generate() 3-5x slower whenever the 2-core machines were
# busy; passive waiting was steady. It must be set before torch loads OpenMP, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__: list[str] = []
