"""Transport: record layouts, lock-free SPSC rings in shared memory, and wait strategies."""
