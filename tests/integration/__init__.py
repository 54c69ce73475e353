"""Integration tests: the production topology (CeleryExecutor) as real processes."""
