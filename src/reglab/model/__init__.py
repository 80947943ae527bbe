"""Models: the original study's network and a user's model file or function built for an arm (`build_model`),
Keras imported with the JAX backend, and the models a run keeps (weights.npz, recommended.keras).
"""

from reglab.model.build import build_model, build_seed_model, compile_model
from reglab.model.callable_source import ModelSource, model_source
from reglab.model.kept import RECOMMENDED_KERAS, KeptModel, keep_recommended, keep_weights, load_arm_model

__all__ = [
    "KeptModel", "ModelSource", "RECOMMENDED_KERAS", "build_model", "build_seed_model", "compile_model",
    "keep_recommended", "keep_weights", "load_arm_model", "model_source",
]
