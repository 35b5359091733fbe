"""werkzeug's development server for the integration tests.

``python -m tests.integration.werkzeug_server MODULE:ATTRIBUTE --port N [--threaded]
[--certfile CERT --keyfile KEY]`` serves the WSGI app on 127.0.0.1 with
``werkzeug.serving.run_simple``: one thread per connection with ``--threaded``, else
one connection at a time; over TLS with a certificate and its key.
"""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from bridge._importer import import_from_string


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threaded", action="store_true")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    arguments = parser.parse_args()
    app = import_from_string(arguments.app)
    tls = (arguments.certfile, arguments.keyfile) if arguments.certfile else None
    run_simple("127.0.0.1", arguments.port, app, threaded=arguments.threaded, ssl_context=tls)


if __name__ == "__main__":
    main()
