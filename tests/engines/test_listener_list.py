"""`ListenerList`: every event reaches each listener in order; values and kernels only those that ask for them."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from reglab.config import SweepConfig
from reglab.engines import Listener, ListenerList
from reglab.record.schema import EpochRecord

HOOKS = [name for name, member in vars(Listener).items() if inspect.isfunction(member) and not name.startswith("_")]


class Log(Listener):
    def __init__(self, name: str, calls: list, *, values: bool = False, kernels: bool = False) -> None:
        self.name, self.calls, self._values, self._kernels = name, calls, values, kernels

    @property
    def wants_values(self) -> bool:
        return self._values

    @property
    def wants_kernels(self) -> bool:
        return self._kernels


def _logged(hook: str):
    def method(self: Log, *args) -> None:
        self.calls.append((self.name, hook))
    return method


for _hook in HOOKS:
    if _hook != "arms_finished":  # kept from the base class: one arm_finished per arm
        setattr(Log, _hook, _logged(_hook))


def call_each_hook(listener: Listener) -> None:
    arm = SweepConfig(lambdas=(0.0,), seeds=1, epochs=1).arms()[0]
    record = EpochRecord(arm=0, strength=0.0, seed=0, epoch=1, loss=1.0, val_loss=1.0, accuracy=0.5, val_accuracy=0.5,
                         data_loss=1.0, val_data_loss=1.0, penalty=0.0, kernel_norm=1.0, seconds=0.1)
    args = {
        "arms_started": ([arm], 3), "batches_done": ([arm], 1, 1), "epoch_done": (record,),
        "arm_finished": (arm, "completed", {}), "arms_finished": ([(arm, "completed", {})],),
        "checkpoint": ({}, {}), "strategy_chosen": ("vmap",), "epoch_kernels": (1, {}),
        "validation_values": (1, [0], np.zeros((1, 2), np.float32), np.zeros((1, 2), bool)),
        "check_stop": (), "note": ("a line",),
    }
    assert set(args) == set(HOOKS), "a Listener hook this test does not call"
    for hook in HOOKS:
        getattr(listener, hook)(*args[hook])


def test_every_hook_reaches_each_listener_in_order_and_values_and_kernels_only_those_that_ask():
    calls: list = []
    first, second = Log("first", calls, values=True), Log("second", calls, kernels=True)
    listeners = ListenerList([first, second])
    assert listeners.wants_values and listeners.wants_kernels
    call_each_hook(listeners)
    expected = []
    for hook in HOOKS:
        names = {"validation_values": ["first"], "epoch_kernels": ["second"]}.get(hook, ["first", "second"])
        if hook == "arms_finished":  # the base class's default: one arm_finished per arm
            hook = "arm_finished"
        expected += [(name, hook) for name in names]
    assert calls == expected


def test_a_list_wants_values_or_kernels_only_if_a_member_does():
    plain = ListenerList([Listener(), Listener()])
    assert not plain.wants_values and not plain.wants_kernels
    assert not ListenerList([]).wants_values


def test_a_stop_raised_by_one_listener_stops_the_rest_hearing_of_that_batch():
    calls: list = []

    class Stop(Listener):
        def batches_done(self, arms, epoch, step):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ListenerList([Stop(), Log("display", calls)]).batches_done([], 1, 1)
    assert calls == []
