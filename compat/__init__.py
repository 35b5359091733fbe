"""A compatibility yardstick: the frameworks' own test suites, natively and through the bridge.

``python -m compat`` runs the test suites of Starlette, FastAPI, Flask and Werkzeug
from their sdists twice, natively and with every app their test clients are given
behind the double bridge, and lists the tests that differ. See ``compat/README.md``.
"""
