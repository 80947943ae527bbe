"""The per-arm strategy: each arm its own compiled Keras step, the arms shared out to worker threads.

Why, on a CPU: an arm's step is dozens of small operations; vmapping arms together turns its products
into batched matmuls with layout copies, and spreading one step over both cores costs more in
synchronization than it gains. Whole arms on separate cores avoid both. Two ways to run an arm's steps:
- `steps`: one compiled call per batch from a Python loop, for models with convolutions. XLA's CPU
  backend runs a convolution inside a loop body (`lax.scan`) about 3× slower than the same
  convolution dispatched on its own (jax-ml/jax#12868; measured here, docs/engines.md), so a scan
  over an epoch's batches loses what it saves in dispatch.
- `chunks`: a `lax.scan` over a chunk of batches per call, for everything else: no dispatch per step.
The choice is a rule on the model (`stepwise`), never a timing, so a sweep's record is the same on
every run; each arm's numbers do not depend on which worker ran it or how many workers there are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from reglab._keras import keras
from reglab.engines.keras_steps import ArmState, KerasSteps
from reglab.engines.strategy import Coefficients, Results, SeedStart
from reglab.engines.workers import on_workers, worker_count
from reglab.record.arrays import FinalWeights

#: What one arm's call returns (`PerArmStrategy._each`).
T = TypeVar("T")

#: Rows per evaluation call (validation and test): few large calls run faster than Keras's batches of
#: `batch_size`; the means are the same (sums of per-example values over the same examples).
EVAL_ROWS = 1000

#: The layers XLA's CPU backend runs slowly inside a loop body.
CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv1DTranspose,
                keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose, keras.layers.DepthwiseConv2D,
                keras.layers.SeparableConv2D, keras.layers.SeparableConv1D, keras.layers.DepthwiseConv1D)


def has_convolution(model: Any) -> bool:
    """Whether any layer of the model, nested ones included, is a convolution."""
    return any(isinstance(layer, CONVOLUTIONS) for layer in model._flatten_layers(include_self=False, recursive=True))


class EvalChunks(NamedTuple):
    """An evaluation set in calls of EVAL_ROWS rows, the last one with the rest (its own compilation)."""

    x: list[Any]
    y: list[Any]

    @staticmethod
    def of(x: np.ndarray, y: np.ndarray) -> EvalChunks:
        bounds = list(range(0, len(x), EVAL_ROWS)) + [len(x)]
        return EvalChunks([jnp.asarray(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                          [jnp.asarray(y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])


class _Programs:
    """The compiled programs for one arm, shared by all arms: compiled once per input shape, ahead of
    time under a lock (tracing sets the arm's strengths on the shared model, one trace at a time)."""

    def __init__(self, steps: KerasSteps) -> None:
        self.steps = steps
        self._lock = threading.Lock()
        self._compiled: dict[tuple, Any] = {}

        def step(state, x_all, y_all, rows, coef):
            logs, state = steps.train_step(state, x_all[rows], y_all[rows], coef)
            return state, logs

        def chunk(state, x_all, y_all, rows, coef):
            def body(state, rows_t):
                state, logs = step(state, x_all, y_all, rows_t, coef)
                return state, logs
            state, logs = jax.lax.scan(body, state, rows)
            return state, jax.tree_util.tree_map(lambda a: a[-1], logs)

        def evaluate(trainable, non_trainable, metrics, x, y, coef):
            logs, metrics = steps.test_step(ArmState(trainable, non_trainable, [], metrics), x, y, coef)
            return logs, metrics

        def evaluate_examples(trainable, non_trainable, metrics, x, y, coef):
            logs, metrics = evaluate(trainable, non_trainable, metrics, x, y, coef)
            return logs, metrics, steps.examples(trainable, non_trainable, x, y)

        self._functions = {
            "step": jax.jit(step, donate_argnums=(0,)), "chunk": jax.jit(chunk, donate_argnums=(0,)),
            "evaluate": jax.jit(evaluate), "evaluate_examples": jax.jit(evaluate_examples),
            "kernel_stats": jax.jit(lambda trainable, coef: steps.kernel_stats(trainable, coef)),
        }

    def get(self, kind: str, *args: Any) -> Callable[..., Any]:
        """The compiled `kind` for arguments shaped as `args`."""
        key = (kind,) + tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree_util.tree_leaves(args))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = self._compiled[key] = self._functions[kind].lower(*args).compile()
        return compiled


class PerArmStrategy:
    """Each arm's state on its own (a list in arm order); the arms' calls taken by worker threads."""

    pads_last_batch = False

    def __init__(self, steps: KerasSteps, learning_rates: Sequence[float], n_seeds: int, stepwise: bool) -> None:
        self.steps, self.L, self.S = steps, len(learning_rates), n_seeds
        self.learning_rates = list(learning_rates)  # each setting's
        self.stepwise = stepwise
        self.name = "per-arm-steps" if stepwise else "per-arm-chunks"
        self.programs = _Programs(steps)
        self.workers = worker_count()
        #: raises KeyboardInterrupt once a stop is asked (the driver sets it): checked between arms
        self.check: Callable[[], None] = lambda: None

    def _each(self, call: Callable[[int, int, int], T]) -> list[T]:
        """`call(arm, seed index, setting index)` for every arm, on the workers, in arm order."""
        return on_workers(lambda g: jax.block_until_ready(call(g, *divmod(g, self.L))), self.S * self.L, self.workers, self.check)

    def _grid(self, per_arm: list[dict[str, np.ndarray] | None], keys: Sequence[str]) -> Results:
        """Per-arm scalars → [seeds, settings] arrays (NaN for arms that did not run)."""
        out = {}
        for k in keys:
            values = np.array([np.nan if d is None else float(d[k]) for d in per_arm], dtype=np.float64)
            out[k] = values.reshape(self.S, self.L)
        return out

    def initial_state(self, starts: Sequence[SeedStart]) -> list[ArmState]:
        return [self.steps.start(starts[g // self.L], self.learning_rates[g % self.L]) for g in range(self.S * self.L)]

    def train_chunk(self, state: list[ArmState], x_all: Any, y_all: Any, idx: np.ndarray, n_valid: np.ndarray | None,
                    coef: Coefficients, active: np.ndarray, freeze: bool) -> tuple[list[ArmState], Results]:
        idx = np.asarray(idx, dtype=np.int32)

        def run(g: int, s: int, l: int) -> tuple[ArmState, Any]:
            st = state[g]
            if not active[s, l]:  # diverged or stopped early: keeps its state
                return st, None
            c = coef.arm(s, l)
            if self.stepwise:  # every step of the chunk has the first one's shapes: one lookup
                step, logs = self.programs.get("step", st, x_all, y_all, idx[0, s], c), None
                for t in range(idx.shape[0]):
                    st, logs = step(st, x_all, y_all, idx[t, s], c)
            else:
                rows = idx[:, s]
                st, logs = self.programs.get("chunk", st, x_all, y_all, rows, c)(st, x_all, y_all, rows, c)
            return st, logs

        outs = self._each(run)
        logs = [o[1] for o in outs]
        keys = next(d for d in logs if d is not None).keys()
        return [o[0] for o in outs], self._grid(jax.device_get(logs), keys)

    def eval_data(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> EvalChunks:
        return EvalChunks.of(x, y)

    def evaluate(self, state: list[ArmState], data: EvalChunks, coef: Coefficients, examples: bool) -> Results:
        kind = "evaluate_examples" if examples else "evaluate"

        def run(g: int, s: int, l: int) -> tuple[Any, list[Any]]:
            st, c = state[g], coef.arm(s, l)
            metrics, logs, each = self.steps.zero_metrics(), None, []
            for x, y in zip(data.x, data.y):
                args = (st.trainable, st.non_trainable, metrics, x, y, c)
                out = self.programs.get(kind, *args)(*args)
                logs, metrics = out[0], out[1]
                if examples:
                    each.append(out[2])
            return logs, each

        outs = jax.device_get(self._each(run))
        results = self._grid([o[0] for o in outs], outs[0][0].keys())
        if examples:
            shape = (self.S, self.L, -1)
            results["example_loss"] = np.concatenate([np.concatenate([e[0] for e in o[1]]) for o in outs]).reshape(shape)
            results["example_correct"] = np.concatenate([np.concatenate([e[1] for e in o[1]]) for o in outs]).reshape(shape)
        return results

    def kernel_stats(self, state: list[ArmState], coef: Coefficients) -> tuple[np.ndarray, np.ndarray]:
        stats = []
        for g, st in enumerate(state):
            c = coef.arm(*divmod(g, self.L))
            stats.append(self.programs.get("kernel_stats", st.trainable, c)(st.trainable, c))
        sumsq, penalty = (np.array([float(s[i]) for s in jax.device_get(stats)]).reshape(self.S, self.L) for i in (0, 1))
        return sumsq, penalty

    def reset_metrics(self, state: list[ArmState]) -> list[ArmState]:
        return [st._replace(metrics=self.steps.zero_metrics()) for st in state]

    def select(self, mask: np.ndarray, a: list[ArmState], b: list[ArmState]) -> list[ArmState]:
        # copies: training donates the state's buffers, and a kept state must outlive them
        return [jax.tree_util.tree_map(jnp.copy, (a if mask[divmod(g, self.L)] else b)[g]) for g in range(self.S * self.L)]

    def final_weights(self, state: list[ArmState]) -> list[list[FinalWeights]]:
        def arm(st: ArmState) -> FinalWeights:
            return FinalWeights([np.asarray(v) for v in st.trainable], [np.asarray(v) for v in st.non_trainable])
        return [[arm(state[s * self.L + l]) for l in range(self.L)] for s in range(self.S)]
