"""vidmem.data."""
