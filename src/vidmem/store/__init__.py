"""vidmem.store."""
