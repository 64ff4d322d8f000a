"""vidmem.learn."""
