"""Figures, in two steps: `*_data` functions return plain NamedTuples (tested), `draw_*` functions draw them.

Every loss axis says whether it includes the L2 penalty: Keras's `loss`/`val_loss` do, the data loss
(cross-entropy) does not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .formatting import lam_label
from .record import RunRecord

FIGURES = "figures"


class ArmCurves(NamedTuple):
    arm: int
    lam: float
    seed: int
    epochs: list[int]
    loss: list[float]
    val_loss: list[float]
    data_loss: list[float]
    val_data_loss: list[float]
    accuracy: list[float]
    val_accuracy: list[float]


class Series(NamedTuple):
    label: str
    epochs: list[int]
    values: list[float]


class Overlay(NamedTuple):
    title: str
    ylabel: str
    series: list[Series]


def arm_curves_data(run: RunRecord, arm: int) -> ArmCurves:
    meta = run.arms[arm]
    rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
    col = lambda name: [getattr(r, name) for r in rows]  # noqa: E731
    return ArmCurves(
        arm=arm, lam=float(meta["lambda"]), seed=int(meta["seed"]), epochs=col("epoch"),
        loss=col("loss"), val_loss=col("val_loss"), data_loss=col("data_loss"), val_data_loss=col("val_data_loss"),
        accuracy=col("accuracy"), val_accuracy=col("val_accuracy"),
    )


def _arm_label(run: RunRecord, arm: int) -> str:
    meta = run.arms[arm]
    label = f"λ={lam_label(float(meta['lambda']))}"
    return label + (f", seed {meta['seed']}" if run.config.seeds > 1 else "")


def overlay_data(run: RunRecord, column: str, title: str, ylabel: str) -> Overlay:
    series = []
    for arm in range(len(run.arms)):
        rows = sorted((r for r in run.epochs if r.arm == arm), key=lambda r: r.epoch)
        series.append(Series(_arm_label(run, arm), [r.epoch for r in rows], [getattr(r, column) for r in rows]))
    return Overlay(title, ylabel, series)


def val_data_loss_overlay_data(run: RunRecord) -> Overlay:
    return overlay_data(run, "val_data_loss", "Validation data loss by λ",
                        "validation cross-entropy (without L2 penalty)")


def kernel_norm_overlay_data(run: RunRecord) -> Overlay:
    return overlay_data(run, "kernel_norm", "Norm of the regularized kernel by λ",
                        "‖W‖ of the Dense(128) kernel (Frobenius)")


# ---------------------------------------------------------------- drawing

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save beside the target, then rename: a figure on disk is always whole."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def draw_arm_curves(c: ArmCurves, path: Path) -> None:
    """The original study's layout: loss (train vs validation) left, accuracy right, titled with λ."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.9))
    ax_loss.plot(c.epochs, c.loss, "o-", color="C0", label="train loss (incl. L2 penalty)")
    ax_loss.plot(c.epochs, c.val_loss, "o-", color="C1", label="validation loss (incl. L2 penalty)")
    ax_loss.plot(c.epochs, c.data_loss, "--", color="C0", alpha=0.7, label="train data loss (no penalty)")
    ax_loss.plot(c.epochs, c.val_data_loss, "--", color="C1", alpha=0.7, label="validation data loss (no penalty)")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="loss (cross-entropy, ± L2 penalty)")
    ax_acc.plot(c.epochs, c.accuracy, "o-", color="C0", label="train accuracy")
    ax_acc.plot(c.epochs, c.val_accuracy, "o-", color="C1", label="validation accuracy")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        if len(c.epochs) <= 20:
            ax.set_xticks(c.epochs)
    fig.suptitle(f"L2 regularization λ = {lam_label(c.lam)}  (seed {c.seed})")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def draw_overlay(ov: Overlay, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in ov.series:
        ax.plot(s.epochs, s.values, "o-", label=s.label)
    ax.set(title=ov.title, xlabel="epoch", ylabel=ov.ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def arm_figure_name(lam: float, seed: int, arm: int) -> str:
    return f"arm{arm:02d}_lambda-{lam:g}_seed-{seed}.png"


def draw_all(run: RunRecord) -> dict[str, list[Path]]:
    """Draw every figure of a run into RUN_DIR/figures; returns {"arms": [...], "overlays": [...]}."""
    out = run.run_dir / FIGURES
    out.mkdir(exist_ok=True)
    arms = []
    for arm in range(len(run.arms)):
        c = arm_curves_data(run, arm)
        path = out / arm_figure_name(c.lam, c.seed, arm)
        draw_arm_curves(c, path)
        arms.append(path)
    overlays = []
    for name, data in (("val_data_loss.png", val_data_loss_overlay_data(run)),
                       ("kernel_norm.png", kernel_norm_overlay_data(run))):
        draw_overlay(data, out / name)
        overlays.append(out / name)
    return {"arms": arms, "overlays": overlays}
