"""rlvr-pipeline's training library: configs, data, models, rollouts, losses, trainers.

Nothing here imports Prefect; every stage runs alone (`python -m pipeline.trainers.<stage>`).
"""

import os

# OpenMP's default spin-waiting made generate() 3-5x slower whenever the 2-core machines were
# busy; passive waiting was steady. It must be set before torch loads OpenMP, hence here.
# Re-measured (SmolLM2-135M, 8 x 64 tokens through the hf loop): alone on the machine, spinning
# (GOMP_SPINCOUNT=100000) took 4.3-4.4 s per call against 6.3-6.6 s passive; with one busy process
# beside it, 35-40 s against 7.7-8.2 s (30000: 19-20 s). Passive costs a wake-up per parallel
# region, which the fused decode step (pipeline/rollout/fused.py) keeps few.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__: list[str] = []
