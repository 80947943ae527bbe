"""Each arm's status in the fused engine, typed: spelled as run.json spells it only at the edges (the
listener's `arms_finished`, checkpoints), where the spelling is kept exactly as it has always been."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np


class ArmStatus(enum.Enum):
    """Where one arm stands. Only TRAINING arms take more steps; the other three are final."""

    TRAINING = "training"
    COMPLETED = "completed"  # trained every epoch (TRAINING until the last one is done)
    DIVERGED = "diverged"  # its training loss was not finite: no more epochs
    STOPPED_EARLY = "stopped"  # early stopping ended it

    @property
    def recorded(self) -> str:
        """As run.json and checkpoints spell it. Checkpoints have always written an arm still training as
        "completed" (what it will be if nothing stops it), so old checkpoints resume unchanged."""
        return ArmStatus.COMPLETED.value if self is ArmStatus.TRAINING else self.value

    @classmethod
    def from_recorded(cls, text: str) -> ArmStatus:
        """A checkpoint's spelling back to a status: "completed" there is an arm still training."""
        try:
            return _FROM_RECORDED[text]
        except KeyError:
            raise ValueError(f"unknown arm status {text!r}") from None


_FROM_RECORDED = {"completed": ArmStatus.TRAINING, "diverged": ArmStatus.DIVERGED, "stopped": ArmStatus.STOPPED_EARLY}
_MEMBERS = tuple(ArmStatus)  # a status's code in `ArmStatuses` is its place here
_CODE = {status: np.int8(i) for i, status in enumerate(_MEMBERS)}


class ArmStatuses:
    """Every arm's status on the [seeds, settings] grid, held as small codes so that the mask of arms
    still training (what the strategies take) is one comparison."""

    def __init__(self, codes: np.ndarray) -> None:
        self._codes = np.asarray(codes, dtype=np.int8)

    @classmethod
    def training(cls, shape: tuple[int, int]) -> ArmStatuses:
        """Every arm at its start."""
        return cls(np.full(shape, _CODE[ArmStatus.TRAINING], dtype=np.int8))

    @classmethod
    def from_recorded(cls, rows: Sequence[Sequence[str]], shape: tuple[int, int]) -> ArmStatuses:
        """A checkpoint's `status` (rows of strings) on the grid; ValueError for another layout or spelling."""
        texts = np.array(rows, dtype=object).reshape(shape)
        return cls(np.array([_CODE[ArmStatus.from_recorded(t)] for t in texts.ravel()], dtype=np.int8).reshape(shape))

    def to_recorded(self) -> list[list[str]]:
        """Rows of strings as checkpoints keep them (see `ArmStatus.recorded`)."""
        return [[_MEMBERS[c].recorded for c in row] for row in self._codes.tolist()]

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._codes.shape[0]), int(self._codes.shape[1]))

    def __getitem__(self, index: tuple[int, int]) -> ArmStatus:
        return _MEMBERS[int(self._codes[index])]

    def training_mask(self) -> np.ndarray:
        """A fresh bool [seeds, settings] mask of the arms still training."""
        return self._codes == _CODE[ArmStatus.TRAINING]

    def mark(self, where: tuple[int, int] | np.ndarray, status: ArmStatus) -> None:
        """Sets the arms at `where` (one (seed, setting) place, or a bool mask) to `status`."""
        self._codes[where] = _CODE[status]

    def finish(self) -> None:
        """Training is over: every arm still training has completed."""
        self.mark(self.training_mask(), ArmStatus.COMPLETED)
