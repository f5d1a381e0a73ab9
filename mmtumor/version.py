"""The package version, in a leaf module every layer may import (the package root imports the API lazily)."""

__version__ = "0.1.0"
