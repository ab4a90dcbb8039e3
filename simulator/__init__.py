"""A local RunComfy-compatible Model API server for tests, demos and benchmarks."""
