"""vidmem.video."""
