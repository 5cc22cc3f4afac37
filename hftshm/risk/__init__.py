"""Pre-trade risk: every order intent is checked here (a numba kernel) before it reaches the OMS."""
