"""``python -m devstack.moto_server --host H --port P``: moto server in a process of its own.

The stack's AWS backend gets a core to itself instead of sharing one interpreter lock with the
proxy, the API and the workers. The local transaction patch is applied here, where moto runs.
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    from devstack import moto_patches

    moto_patches.apply()
    # One log line per AWS call would drown the stack's own output (and slow moto down).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    server._thread.join()  # type: ignore[union-attr]  # serve until the stack terminates us


if __name__ == "__main__":
    main()
