"""Tracking: a sweep published where users already look, TensorBoard and MLflow, live from a run or replayed
from a record (`reglab export`). The interface and fan-out are in `base`; reglab's own record stays the
source of truth.
"""

from reglab.tracking.base import ArmInfo, Publisher, Publishers, SweepStart, replay
from reglab.tracking.mlflow import MlflowPublisher, export_mlflow
from reglab.tracking.publish import check_extras, make_publishers
from reglab.tracking.tensorboard import TensorBoardPublisher, export_tensorboard

__all__ = [
    "ArmInfo", "MlflowPublisher", "Publisher", "Publishers", "SweepStart", "TensorBoardPublisher",
    "check_extras", "export_mlflow", "export_tensorboard", "make_publishers", "replay",
]
