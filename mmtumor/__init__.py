"""mmtumor: brain-tumour segmentation in multi-modal MRI that keeps working when scans are missing.

Importing the package is cheap (no torch): the CLI's --help stays fast.
"""

__version__ = "0.1.0"

from .errors import MmtumorError  # noqa: E402

__all__ = ["__version__", "MmtumorError"]
