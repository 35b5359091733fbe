"""Apps the real-server tests serve; each module exposes ``app`` for ``module:app``."""
