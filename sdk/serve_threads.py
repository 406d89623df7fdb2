"""How many torch threads ``chunkworld serve`` gives the model.

The server has threads of its own besides the model's: the socket thread (ZeroMQ I/O, decoding,
replies) and libzmq's I/O thread. With torch on 2 threads on a 2-core machine, torch's threads
spun waiting for one another while the socket thread needed a core, and a tick went from 124 ms
to 6.7 s under load (issue 37); on 1 thread it held. So the server runs the model on
``SERVE_THREADS`` (1) intra-op thread and 1 inter-op thread unless ``--threads N`` says otherwise
(give N at most the cores left over once the server's own threads have one).
"""

from __future__ import annotations

import logging

import torch

from sdk.errors import ArgumentError

SERVE_THREADS = 1
MAX_THREADS = 256

log = logging.getLogger("chunkworld.serve")


def serve_threads(requested: int | None) -> int:
    """The torch thread count for a server asked for ``requested`` (None: the default)."""
    if requested is None:
        return SERVE_THREADS
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ArgumentError(f"--threads must be an integer, got {requested!r}")
    if not 1 <= requested <= MAX_THREADS:
        raise ArgumentError(
            f"--threads {requested}: give 1-{MAX_THREADS} (1, the default, leaves the server's "
            "own threads a core)"
        )
    return requested


def apply_serve_threads(requested: int | None) -> int:
    """Set torch's thread counts for serving (``serve_threads``) and log them; returns the
    intra-op count. The inter-op pool is 1 thread when torch still lets it be set."""
    threads = serve_threads(requested)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # torch allows it once, before any inter-op work; it is 1 then anyway
        pass
    log.info(
        "torch threads: %d intra-op, %d inter-op (--threads N to change; default %d)",
        torch.get_num_threads(),
        torch.get_num_interop_threads(),
        SERVE_THREADS,
    )
    return threads
