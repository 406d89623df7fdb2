"""``chunkworld serve`` and ``chunkworld keys``: serve worlds over the ZeroMQ bridge (one model
loaded once, a Session per client's ``hello``), and make the CURVE keys for serving beyond
loopback. The parser is ``sdk/cli.py``'s."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sdk.errors import ArgumentError


def session_factory(args: argparse.Namespace) -> Callable[[dict[str, Any]], Any]:
    """One model loaded once; each client's ``hello`` options make a Session on it."""
    from sdk.models import load_model
    from sdk.session import Session

    loaded = load_model(args.model, device=args.device)
    if loaded.openings is not None:  # decoded now, not in one client's text start, others waiting
        _ = loaded.openings.frames
    # every hello option is an int in these bounds (advertised in the hello reply's limits)
    bounds = {"seed": (0, 2**63 - 1), "steps": (1, 64), "in_flight": (1, 8)}

    def factory(options: dict[str, Any]) -> Session:
        unknown = sorted(set(options) - set(bounds))
        if unknown:
            raise ValueError(f"unknown session options {unknown}; allowed: {sorted(bounds)}")
        for key, value in options.items():
            low, high = bounds[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"option {key!r} must be an int in {low}..{high}, got {value!r}")
        return Session(
            loaded,
            seed=options.get("seed", 0),
            steps=options.get("steps", args.steps),
            in_flight=options.get("in_flight", args.in_flight),
            precision=args.precision,
            prior_level=args.prior_level,
            pixel_history=args.pixel_history,
            palette=args.palette,
        )

    factory.option_bounds = bounds  # type: ignore[attr-defined]
    from sdk.batch import step_together  # clients ready together step in one pass

    factory.step_many = step_together  # type: ignore[attr-defined]
    factory.model_config = loaded.model.cfg  # type: ignore[attr-defined]
    return factory


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    import torch
    import zmq

    from bridges.binding import BindError, check_bind
    from bridges.limits import ServerLimits
    from bridges.server import serve
    from sdk.serve_threads import apply_serve_threads
    from world.core.cpus import warn_if_busy

    try:  # a refused bind is one line, before the model loads
        check_bind(args.control, args.frames, curve_keys_dir=args.keys, insecure=args.insecure)
    except BindError as exc:
        print(f"chunkworld serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        apply_serve_threads(args.threads)  # 1 unless --threads: the server's threads need a core
    except ArgumentError as exc:
        print(f"chunkworld serve: error: {exc}", file=sys.stderr)
        return 2
    warn_if_busy(torch.get_num_threads())
    limits = ServerLimits()
    changes = {
        k: v
        for k, v in (("max_sessions", args.max_sessions), ("idle_ttl_s", args.idle_ttl))
        if v is not None
    }
    limits = dataclasses.replace(limits, **changes)
    if args.ray is not None and args.record:
        print(
            "chunkworld serve: error: --record keeps a local model's sessions; drop --ray or --record",
            file=sys.stderr,
        )
        return 2
    try:
        if args.ray is None:
            factory = session_factory(args)
        else:
            from sdk.cluster import serve_factory

            factory = serve_factory(args)
            # calls wait on their actors: an engine thread per actor, its sessions' steps batched
            limits = dataclasses.replace(limits, engine_threads=len(factory.workers))
    except (ImportError, RuntimeError, ConnectionError) as e:  # no ray; no cluster; no actors
        print(f"chunkworld serve: error: {e}", file=sys.stderr)
        return 2
    sink = None
    if args.record:
        from sdk.record_sink import DatasetSink

        try:
            sink = DatasetSink(args.record, factory.model_config, args.model)  # type: ignore[attr-defined]
        except (ValueError, OSError) as e:
            print(f"chunkworld serve: error: --record {args.record}: {e}", file=sys.stderr)
            return 2
    try:
        serve(
            factory,
            record_sink=sink,
            control=args.control,
            frames=args.frames,
            curve_keys_dir=args.keys,
            insecure=args.insecure,
            limits=limits,
        )
    except zmq.ZMQError as e:  # a busy port or an address this machine does not have
        reason = zmq.strerror(e.errno) if e.errno is not None else str(e)
        print(
            f"chunkworld serve: error: cannot bind {args.control} / {args.frames} ({reason}); "
            f"stop the program using it or pick free ports with --control and --frames",
            file=sys.stderr,
        )
        return 2
    except ValueError as e:  # a non-loopback endpoint without keys or --insecure
        print(f"chunkworld serve: error: {e}", file=sys.stderr)
        return 2
    finally:
        getattr(factory, "shutdown", lambda: None)()  # Ray's actors
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from bridges.keys import generate_keys

    for role, path in generate_keys(args.dir, client_name=args.client_name).items():
        print(f"{role:<14} {path}")
    return 0
