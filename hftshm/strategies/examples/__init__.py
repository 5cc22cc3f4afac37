"""Example strategies the docs show (importable, so benchmarks and tests run them as written)."""
