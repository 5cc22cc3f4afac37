"""The one declaration of every record hftshm puts on a ring or in shared memory.

Each ``*.toml`` file here declares one record: its name, version, itemsize and every field with an
explicit offset. Nothing else in the project writes a record's fields down; ``hftshm.transport.layout``
turns these files into numpy dtypes (which numba compiles against) and fingerprints.
"""
