"""One exception hierarchy: the CLI turns any of these into one red line and exit code 1."""

from __future__ import annotations


class MmtumorError(Exception):
    """Base of every error a user can cause or fix (bad input, missing files, ...)."""


class InputError(MmtumorError):
    """A path, option or file the user gave cannot be used."""


class NoCasesError(InputError):
    """A folder holds no case we recognise."""


class ReadError(InputError):
    """A file exists but cannot be read as the format we expect."""


class GeometryError(MmtumorError):
    """Images that must share a grid (shape/affine) do not."""


class LabelError(MmtumorError):
    """A label map holds values outside the scheme it claims."""



class WeightsError(MmtumorError):
    """Weights cannot be found, downloaded, verified or loaded."""


class ChecksumError(WeightsError):
    """A weights file does not match the SHA-256 sum its manifest promises."""


class OfflineError(WeightsError):
    """Hub weights are needed but downloads are disabled and the cache does not hold them."""
