"""Transport: record layouts, lock-free SPSC rings in shared memory, and wait strategies.

``layout`` (record declarations) - ``descriptor`` (ring header offsets) - ``atomics`` (acquire/release
intrinsics) - ``ring_nb`` (the ring's numba kernels) - ``ring`` (``Ring``: create/attach, Python API)
- ``segment`` (shared-memory ownership) - ``doorbell``/``doorbell_nb``/``barrier`` (parking and
wake-ups) - ``wait``/``wait_nb`` (wait strategies) - ``clock_nb`` (monotonic clock in numba).
"""
