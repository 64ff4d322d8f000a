"""vidmem.app."""
