"""CURVE key files for serving the bridge beyond loopback (`chunkworld keys DIR`).

`generate_keys(dir)` writes, with pyzmq's `zmq.auth.create_certificates`:

    server.key  server.key_secret   the server's public / secret key
    client.key  client.key_secret   one client's public / secret key

Start the server with `curve_keys_dir=dir` (it admits clients whose public `*.key` file is in
`dir`); give a client `server.key` and its own `client.key_secret`. Secret files are written 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth


def generate_keys(directory: str | Path, *, client_name: str = "client") -> dict[str, Path]:
    """Create the server's and one client's key pairs in `directory` (made if missing).

    Returns:
        paths by role: "server_public", "server_secret", "client_public", "client_secret".

    Raises:
        RuntimeError: libzmq was built without CURVE support.
        FileExistsError: a key file is already there (delete it to make new keys).
    """
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq has no CURVE support; install pyzmq wheels from PyPI")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("server", client_name):
        for suffix in (".key", ".key_secret"):
            if (directory / f"{name}{suffix}").exists():
                raise FileExistsError(
                    f"{directory / (name + suffix)} exists; delete it to make new keys"
                )
    paths: dict[str, Path] = {}
    for role, name in (("server", "server"), ("client", client_name)):
        public, secret = zmq.auth.create_certificates(directory, name)
        os.chmod(secret, 0o600)
        paths[f"{role}_public"], paths[f"{role}_secret"] = Path(public), Path(secret)
    return paths
