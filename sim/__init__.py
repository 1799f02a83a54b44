"""nomul verification: the integer golden model and the simulation testbenches."""
