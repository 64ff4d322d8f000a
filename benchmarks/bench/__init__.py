"""vidmem's benchmarks: each module times the library's own public functions against a floor.

`benchmarks/run.py` is the entry point; `harness` holds the timing and child-process helpers,
`videos` the synthetic clips, one module per benchmark, and `report` the Markdown writer.
"""
