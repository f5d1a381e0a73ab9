"""mmtumor: brain-tumour segmentation in multi-modal MRI that keeps working when scans are missing.

Importing the package is cheap (no torch): the CLI's --help stays fast. The Python API lives in ``mmtumor.api``
(it mirrors the CLI); ``mmtumor.segment_images`` is loaded on first use.
"""

from .errors import MmtumorError
from .version import __version__

__all__ = ["__version__", "MmtumorError", "segment_images", "Segmentation"]


def __getattr__(name: str):
    import importlib

    if name in ("segment_images", "Segmentation"):
        return getattr(importlib.import_module(".api", __name__), name)
    if name == "api":  # ``import mmtumor; mmtumor.api.compare(...)`` without a second import line
        return importlib.import_module(".api", __name__)
    raise AttributeError(f"module 'mmtumor' has no attribute {name!r}")
