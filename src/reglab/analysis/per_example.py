"""The per-example validation values an analysis compares settings on, by strength and seed: the paired design's
raw material (noise.paired_difference), shared by the recommendation, the heat map and the coupling verdict."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PerExampleValues(NamedTuple):
    """Per-example validation values of the comparable arms of one family × learning rate: strength → seed →
    each example's data loss (`loss`) or 1.0/0.0 for right/wrong (`correct`), float64."""

    loss: dict[float, dict[int, np.ndarray]]
    correct: dict[float, dict[int, np.ndarray]]
    complete: bool  # every comparable arm has them
