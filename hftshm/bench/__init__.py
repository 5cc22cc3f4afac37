"""Benchmarks: ``hftshm bench X``. Each module measures one thing beside the peers it is compared with."""
