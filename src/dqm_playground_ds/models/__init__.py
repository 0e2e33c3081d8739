"""Frozen models: trained strategies as explicit arrays + JSON, their store and compatibility.

No Kedro here: :func:`load_model` works in any Python with numpy, pandas and scikit-learn and this
package; the DIALS package (``deploy/dials_model.py``) needs not even this package.
"""

from dqm_playground_ds.models.codec import ModelFormatError
from dqm_playground_ds.models.compat import ModelMismatchError, check_compatible
from dqm_playground_ds.models.frozen import (
    FORMAT_VERSION,
    FrozenModel,
    freeze,
    load_model,
    read_meta,
    save_model,
)
from dqm_playground_ds.models.store import ModelStore

__all__ = [
    "FORMAT_VERSION",
    "FrozenModel",
    "ModelFormatError",
    "ModelMismatchError",
    "ModelStore",
    "check_compatible",
    "freeze",
    "load_model",
    "read_meta",
    "save_model",
]
