"""Runtime: the worker contract, the duty-cycle runner, composite placement and the supervisor."""
