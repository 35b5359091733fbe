"""Real-server tests (marker ``server``): each server runs in a subprocess on 127.0.0.1."""
