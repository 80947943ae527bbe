"""A setting is a value with a name: the regularizer family (with its formula and words), its strength and
the optimizer's learning rate.

Arms, metrics.csv rows, analysis results and figures are keyed by `Setting`, never by λ alone: an L2 arm
and a weight-decay arm at the same strength are different settings, and so are two arms at different
learning rates. Strengths are compared within a series (one family at one learning rate); families are
compared with each other explicitly (`analyze.FamilyComparison`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reglab.errors import ConfigError
from reglab.formatting import lam_label
from reglab.inputs import brief

#: Keras's Adam default, and the learning rate of every arm unless a sweep sets others.
DEFAULT_LEARNING_RATE = 0.001


@dataclass(frozen=True)
class Family:
    """A regularizer family, and how a report speaks of it."""

    name: str  # canonical, as in run.json and metrics.csv: l2, l1, l1_l2, l1_l2:0.5, weight_decay
    l1: float  # multipliers of the strength λ for the L1 term, the L2 term and decoupled weight decay
    l2: float
    decay: float

    @classmethod
    def of(cls, name: str) -> "Family":
        return parse_family(name)

    @property
    def in_loss(self) -> bool:
        """L1/L2 add a penalty to Keras's `loss` and `val_loss`; decoupled weight decay adds none."""
        return self.decay == 0.0

    @property
    def label(self) -> str:
        """Short, for legends and headings: L2, L1, L1 + L2, weight decay."""
        if self.decay:
            return "weight decay"
        if self.l1 and self.l2:
            return "L1 + L2" if self.l2 == 1.0 else f"L1 + {self.l2:g}·L2"
        return "L1" if self.l1 else "L2"

    @property
    def formula(self) -> str:
        """What the family adds, in words a Keras user recognises."""
        if self.decay:
            return "W ← W − lr·λ·W after each step (decoupled weight decay, AdamW-style; nothing added to the loss)"
        terms = []
        if self.l1:
            terms.append("λ·Σ|W|")
        if self.l2:
            terms.append("λ·ΣW²" if self.l2 == 1.0 else f"{self.l2:g}·λ·ΣW²")
        return " + ".join(terms) + " added to the loss"

    @property
    def keras(self) -> str:
        """The Keras code of one arm, with λ left symbolic."""
        if self.decay:
            return "optimizer=Adam(weight_decay=λ)"
        if self.l1 and self.l2:
            return "kernel_regularizer=L1L2(l1=λ" + (", l2=λ)" if self.l2 == 1.0 else f", l2={self.l2:g}·λ)")
        return "kernel_regularizer=l1(λ)" if self.l1 else "kernel_regularizer=l2(λ)"

    @property
    def strength_axis(self) -> str:
        """An axis label for the family's strength."""
        return f"{self.label} strength λ" if self.label != "weight decay" else "weight decay λ"

    @property
    def penalty_words(self) -> str:
        """How a loss axis names what the penalty-free loss leaves out."""
        return f"without the {self.label} penalty" if self.in_loss else "(weight decay adds no penalty to the loss)"


#: Regularizer families; `l1_l2` may carry `:RATIO` (the L2 strength is RATIO × the L1 strength λ).
FAMILIES: tuple[str, ...] = ("l2", "l1", "l1_l2", "weight_decay")


def parse_family(spec: Any) -> Family:
    """A family spec → its `Family`: the canonical name, and the multipliers of the strength λ for the L1 term,
    the L2 term and decoupled weight decay. `l1_l2` alone is L1 and L2 both at λ; `l1_l2:0.5` is L1 at λ, L2 at λ/2."""
    if not isinstance(spec, str):
        raise ConfigError(f"a regularizer must be a name, got {brief(spec)}")
    name, sep, ratio_text = spec.partition(":")
    if name not in FAMILIES:
        raise ConfigError(f"unknown regularizer {brief(spec)} (choose from: l2, l1, l1_l2, l1_l2:RATIO, weight_decay)")
    if name != "l1_l2":
        if sep:
            raise ConfigError(f"regularizer {name} takes no :RATIO (only l1_l2 does), got {brief(spec)}")
        return {"l2": Family("l2", 0.0, 1.0, 0.0), "l1": Family("l1", 1.0, 0.0, 0.0),
                "weight_decay": Family("weight_decay", 0.0, 0.0, 1.0)}[name]
    if not sep:
        return Family("l1_l2", 1.0, 1.0, 0.0)
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise ConfigError(f"{brief(spec)}: RATIO (the L2 strength over the L1 one) must be a number") from None
    if not math.isfinite(ratio) or ratio < 0:
        raise ConfigError(f"{brief(spec)}: RATIO must be finite and non-negative")
    ratio += 0.0
    return Family("l1_l2" if ratio == 1.0 else f"l1_l2:{ratio!r}", 1.0, ratio, 0.0)


@dataclass(frozen=True, order=True)
class Setting:
    """One setting: a family at a strength, trained at a learning rate. Arms are settings × seeds."""

    family: str
    strength: float
    learning_rate: float = DEFAULT_LEARNING_RATE

    @property
    def regularizer(self) -> Family:
        return Family.of(self.family)

    @property
    def is_baseline(self) -> bool:
        """Strength 0: no regularization, whatever the family."""
        return self.strength == 0.0

    def label(self, with_learning_rate: bool = False) -> str:
        """"L2 λ = 1e-3", and ", lr = 1e-2" in a sweep of several learning rates."""
        text = f"{self.regularizer.label} λ = {lam_label(self.strength)}"
        return text + f", lr = {lam_label(self.learning_rate)}" if with_learning_rate else text

