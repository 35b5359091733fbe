"""The ``notes`` app: a ``Note`` model, its admin, and the legacy pages."""
