"""Market data: importing exchange recordings into the canonical tick CSV, the binary event cache,
replaying it into rings, and the feed worker."""
