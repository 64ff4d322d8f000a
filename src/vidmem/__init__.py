"""vidmem: predict video memorability with a reproducible DVC pipeline."""

__version__ = "0.1.0"
