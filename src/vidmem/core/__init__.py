"""vidmem.core."""
