"""Apps for import-string tests."""
