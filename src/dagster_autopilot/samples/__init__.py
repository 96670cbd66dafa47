"""Sample data for demos, tests and benchmarks: nothing in the library depends on it."""
