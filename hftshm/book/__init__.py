"""L2 order books on integer price ticks: numba kernels (``l2_apply_nb``) and the Python API (``book``)."""
