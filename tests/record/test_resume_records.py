"""Crash safety of the files themselves: checkpoints on disk are always whole, a torn last row of metrics.csv is
dropped (by the repair before a resume, and by every reader), and damaged or hand-edited records are refused."""

from __future__ import annotations

import numpy as np
import pytest

from reglab.errors import RunDirError
from reglab.record.checkpoint import CHECKPOINT_NPZ, read_checkpoint, write_checkpoint
from reglab.record.schema import COLUMNS, EpochRecord, record_to_row, repair_metrics


def test_checkpoint_round_trip_and_damage(tmp_path):
    write_checkpoint(tmp_path, {"a": np.arange(3, dtype=np.float32)}, {"epoch": 2, "nan": float("nan")})
    arrays, meta = read_checkpoint(tmp_path)
    assert arrays["a"].tolist() == [0, 1, 2] and meta["epoch"] == 2
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    assert read_checkpoint(tmp_path / "missing") is None
    (tmp_path / CHECKPOINT_NPZ).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunDirError, match="damaged"):
        read_checkpoint(tmp_path)


def _metrics_text(rows: list[EpochRecord], tail: str = "") -> str:
    lines = [",".join(COLUMNS)] + [",".join(record_to_row(r)) for r in rows]
    return "\r\n".join(lines) + "\r\n" + tail


def _row(arm: int, epoch: int) -> EpochRecord:
    return EpochRecord(arm, 0.0, 0, epoch, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.0, 1.0, 0.1)


def test_repair_keeps_what_the_checkpoint_covers_and_drops_a_torn_row(tmp_path):
    rows = [_row(0, 1), _row(1, 1), _row(0, 2), _row(1, 2)]
    (tmp_path / "metrics.csv").write_text(_metrics_text(rows, tail="0,0.0,0,3,0.9"), newline="")
    kept = repair_metrics(tmp_path, n_arms=2, epochs_done={0: 2, 1: 1})
    assert [(r.arm, r.epoch) for r in kept] == [(0, 1), (1, 1), (0, 2)]
    assert (tmp_path / "metrics.csv").read_bytes() == _metrics_text(kept).encode()


def test_repair_refuses_a_hand_edited_file(tmp_path):
    text = _metrics_text([_row(0, 1)]).replace("1.0,1.0,0.5", "one,1.0,0.5", 1)
    (tmp_path / "metrics.csv").write_text(text, newline="")
    with pytest.raises(RunDirError, match="not a number"):
        repair_metrics(tmp_path, n_arms=1, epochs_done={0: 1})


def test_a_reader_never_sees_a_torn_row(tmp_path):
    from reglab.record.schema import read_metrics

    rows = [_row(0, 1), _row(0, 2)]
    (tmp_path / "metrics.csv").write_text(_metrics_text(rows, tail="0,0.0,0,3,0.9"), newline="")
    assert [r.epoch for r in read_metrics(tmp_path / "metrics.csv", n_arms=1)] == [1, 2]
    whole_last = _metrics_text(rows).rstrip("\r\n")  # a complete last row without its newline still counts
    (tmp_path / "metrics.csv").write_text(whole_last, newline="")
    assert [r.epoch for r in read_metrics(tmp_path / "metrics.csv", n_arms=1)] == [1, 2]
