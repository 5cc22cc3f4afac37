"""hftshm: a high-frequency trading market data platform on shared-memory rings and numba kernels.

The package reads as the pipeline: ``transport`` (layouts, rings, wait strategies), then the stages
in order (``feed``/``book``, ``strategies``, ``risk``, ``oms``, ``exchange``), then what surrounds them
(``supervisor``, ``metrics``, ``web``, ``security``, ``cli``, ``bench``).
"""

__version__ = "0.1.0"
