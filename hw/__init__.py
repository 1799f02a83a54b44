"""nomul hardware library: Amaranth components for multiplier-free MAC arrays and dataflow."""
