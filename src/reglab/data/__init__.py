"""The data a run trains on: a dataset by name or path (`load_dataset`), read from bundled arrays, IDX, npz
or CSV files, validated, split and scaled once (`Splits`, with `DataInfo` saying what it is and where it came
from). Nothing here is ever unpickled.
"""

from reglab.data.datasets import LOADERS, load_dataset, mnist_5k_path
from reglab.data.splits import NUM_CLASSES, DataInfo, DataOptions, Splits
from reglab.data.tables import load_csv

__all__ = [
    "DataInfo", "DataOptions", "LOADERS", "NUM_CLASSES", "Splits", "load_csv", "load_dataset", "mnist_5k_path",
]
