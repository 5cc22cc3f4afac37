"""L2 order books on integer price ticks: numba kernels (``book_nb``) and the Python API (``book``)."""
