"""A real batching server driven by any batchenv scheduler (``python -m serving.server --help``).

An aiohttp server queues inference requests; at each decision epoch the scheduler (greedy,
timeout, proposed, the optimum's table, a learned checkpoint: any agent spec of
:mod:`agents.registry`) decides through the same state interface the simulator offers
(:mod:`batchenv.state`), and the batch runs on one of three real PyTorch models
(:mod:`serving.models`) in a worker thread. :mod:`serving.engine` has the rules.

HTTP API (JSON; times in s from the start of the episode, durations in ms):

==========================  =======================================================================
``POST /v1/infer``          body ``{"text": "..."}`` (at most 4096 characters; an optional
                            ``"id"`` is echoed): 200 with the result, the model used, the batch and
                            the timings; 429 when ``queue_capacity`` requests wait (dropped,
                            counted); 503 while shutting down; 400 for a bad body
``GET /v1/stats``           counters of the episode (arrived, dropped, answered, batches, ...)
``GET /v1/health``          agent, scenario, episode origin on the machine's monotonic clock
``GET /v1/config``          the served scenario (batchenv's config format)
``POST /v1/episode``        start a new episode (clock origin, counters; the scheduler's reset comes
                            at its first epoch); body ``{"start_in_s": 0.1}`` optional; 409 unless
                            the server is idle
==========================  =======================================================================

At most ``--max-connections`` connections are open at once (default 8192, or less if the
open-files limit is lower); a connection beyond is answered 503 and closed
(:mod:`serving.connections`).

SIGINT or SIGTERM: stop admitting (503), serve what waits for up to ``--drain-timeout-s``,
refuse the rest (503), answer every request, then exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from agents.registry import AgentSpecError, make_agent
from batchenv.config import ConfigError, SystemConfig
from batchenv.fileio import write_json_atomic
from batchenv.scenarios import load_scenario
from serving.cli import UsageError, check_range, run_cli
from serving.connections import DEFAULT_MAX_CONNECTIONS, CappedTCPSite, connection_cap
from serving.engine import (
    MAX_START_IN_S,
    BatchingEngine,
    EngineBusyError,
    NotAcceptingError,
    QueueFullError,
)
from serving.models import ModelWorker, build_models, parse_model_shapes, set_torch_threads

__all__ = ["MAX_TEXT_CHARS", "ServerOptions", "main", "make_app", "serve"]

log = logging.getLogger("serving.server")

MAX_TEXT_CHARS = 4096
"""Longest accepted request text (characters)."""

MAX_INT_DIGITS = 128
"""Longest JSON integer kept exact (characters); longer ones are read as floats."""

BODY_TIMEOUT_S = 10.0
"""Longest time a request body may take to arrive (s); a stalled one gets 400."""

ANSWER_GRACE_S = 1.0
"""On shutdown, how long after the drain the last answers may take to be written (s)."""

_ENGINE = web.AppKey("engine", BatchingEngine)
_INFO = web.AppKey("info", dict)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class UnreadableBodyError(ValueError):
    """The body did not arrive whole or cannot be decoded: its connection is closed after the 400."""


def _bad_body(exc: ValueError) -> web.Response:
    """The 400 answer to a body :func:`_read_json` refused (closing the connection if unreadable)."""
    response = _error(400, str(exc))
    if isinstance(exc, UnreadableBodyError):
        response.force_close()
    return response


def _parse_int(digits: str) -> int | float:
    """A JSON integer; one of more than :data:`MAX_INT_DIGITS` characters becomes a float (``inf``
    when out of float range), so a huge number fails its field's range check, not the parser."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)


async def _read_text(request: web.Request) -> str:
    """The request's body decoded by its charset (UTF-8 by default), read within
    :data:`BODY_TIMEOUT_S` s; ValueError with a one-line reason otherwise."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read()
    except TimeoutError:
        raise UnreadableBodyError(f"the body must arrive within {BODY_TIMEOUT_S:g} s") from None
    except RequestPayloadError:
        raise UnreadableBodyError("the body cannot be decoded as its Content-Encoding says") from None
    charset = request.charset or "utf-8"
    try:
        return raw.decode(charset)
    except LookupError:
        raise ValueError(f"Content-Type: unknown charset {charset[:40]!r}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the body must be text in its charset ({charset[:40]})") from None


async def _read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; ValueError with a one-line reason otherwise."""
    text = await _read_text(request)
    try:
        body = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise ValueError("the body must be a JSON object nested less deeply") from None
    except ValueError:  # JSONDecodeError included
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _text_error(text: Any) -> str | None:
    """Why ``text`` cannot be served (one line naming the field), or None when it can."""
    if not isinstance(text, str):
        return "text: must be a string"
    if len(text) > MAX_TEXT_CHARS:
        return f"text: must have at most {MAX_TEXT_CHARS} characters, got {len(text)}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"text: must be valid Unicode (no lone surrogate), got {exc.object[exc.start]!r} at {exc.start}"
        )
    return None


async def _infer(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    try:
        body = await _read_json(request)
    except ValueError as exc:
        return _bad_body(exc)
    text = body.get("text")
    problem = _text_error(text)
    if problem is not None:
        return _error(400, problem)
    client_id = body.get("id")
    if client_id is not None and not (isinstance(client_id, int | str) and len(str(client_id)) <= 128):
        return _error(400, "id: must be a string or integer of at most 128 characters")
    try:
        answer = await engine.infer(text)
    except QueueFullError as exc:
        return _error(429, str(exc), arrival_s=exc.arrival_s, episode=engine.episode)
    except NotAcceptingError as exc:
        return _error(503, str(exc))
    except RuntimeError as exc:  # the batch failed
        return _error(500, str(exc))
    if client_id is not None:
        answer = {"id": client_id, **answer}
    return web.json_response(answer)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_ENGINE].stats())


async def _health(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    return web.json_response(
        {
            "status": "ok" if engine.accepting else "shutting down",
            "episode": engine.episode,
            "origin_monotonic_s": engine.origin_s,
            **request.app[_INFO],
        }
    )


async def _config(request: web.Request) -> web.Response:
    return web.json_response(request.app[_ENGINE].config.to_dict())


async def _episode(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    start_in_s = 0.0
    if request.can_read_body:
        try:
            body = await _read_json(request)
        except ValueError as exc:
            return _bad_body(exc)
        start_in_s = body.get("start_in_s", 0.0)
        if (
            isinstance(start_in_s, bool)
            or not isinstance(start_in_s, int | float)
            or not 0 <= start_in_s <= MAX_START_IN_S  # before float(): a huge int overflows it
        ):
            return _error(400, f"start_in_s: must be a number of seconds in [0, {MAX_START_IN_S:g}]")
    if not engine.accepting:
        return _error(503, "the server is shutting down")
    try:
        origin = engine.begin_episode(float(start_in_s))
    except EngineBusyError as exc:
        return _error(409, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"episode": engine.episode, "origin_monotonic_s": origin})


def make_app(engine: BatchingEngine, info: dict[str, Any]) -> web.Application:
    """The aiohttp application of ``engine``; ``info`` is added to ``/v1/health``."""
    app = web.Application(client_max_size=64 * 1024)
    app[_ENGINE] = engine
    app[_INFO] = info
    app.add_routes(
        [
            web.post("/v1/infer", _infer),
            web.get("/v1/stats", _stats),
            web.get("/v1/health", _health),
            web.get("/v1/config", _config),
            web.post("/v1/episode", _episode),
        ]
    )
    return app


# --------------------------------------------------------------------------------------------
# Starting and stopping
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """What :func:`serve` needs besides the config and the agent.

    :param host: address to listen on.
    :param port: TCP port (0: any free port; the ready file says which).
    :param drain_timeout_s: on shutdown, how long waiting requests are still served (s).
    :param ready_file: written (JSON: url, pid) once the server accepts requests.
    :param max_connections: connections open at once; a further one gets 503 and is closed.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    drain_timeout_s: float = 10.0
    ready_file: Path | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS


async def serve(engine: BatchingEngine, info: dict[str, Any], options: ServerOptions) -> dict[str, Any]:
    """Run the server until SIGINT or SIGTERM, then shut down cleanly; returns the final stats."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine.start()
    runner = web.AppRunner(
        make_app(engine, info),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=options.drain_timeout_s + ANSWER_GRACE_S,  # not aiohttp's 60 s
    )
    await runner.setup()
    site = CappedTCPSite(runner, options.host, options.port, max_connections=options.max_connections)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    print(f"serving {info['agent']} on {info['scenario']} at {url} (Ctrl-C to stop)", flush=True)
    if options.ready_file is not None:
        write_json_atomic(options.ready_file, {"url": url, "pid": os.getpid()})
    await stop.wait()
    print("shutting down: serving what waits, refusing new requests", flush=True)
    await engine.shutdown(options.drain_timeout_s)
    await runner.cleanup()
    stats = engine.stats()
    print(
        f"stopped: {stats['n_answered']} answered, {stats['n_dropped']} dropped, "
        f"{stats['n_refused']} refused in episode {stats['episode']}; "
        f"{site.refused} connections refused over the cap",
        flush=True,
    )
    return stats


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description=(
            "A real batching server: requests are queued, a batchenv scheduler decides at each "
            "decision epoch, batches run on real PyTorch models (random transformer encoders "
            "standing in for LLM-1/2/3). Loopback only unless --public."
        ),
        epilog=(
            "examples:\n"
            "  python -m serving.server --scenario default --agent proposed\n"
            "  python -m serving.server --scenario docs/results/sim_to_real_calibrated.yaml \\\n"
            "      --agent 'timeout(B=16,T=20,model=LLM-2)' --rate-per-s 200 --port 8001\n"
            '  curl -s localhost:8000/v1/infer -d \'{"text": "hello"}\''
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", default="default", help="scenario name or YAML path (default: default)")
    parser.add_argument(
        "--agent",
        default="greedy",
        help="agent spec as in evaluate.py: greedy, timeout(B=16,T=20), proposed, optimal, "
        "path/to/checkpoint.zip, ... (default: greedy)",
    )
    parser.add_argument(
        "--rate-per-s",
        type=float,
        default=None,
        help="set the scenario's mean arrival rate (requests/s): what the scheduler is told to "
        "expect (optimal solves for it, proposed starts from it)",
    )
    parser.add_argument("--no-tuned", action="store_true", help="do not use agents/tuned/ parameters")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--public", action="store_true", help="allow a --host that is not a loopback address")
    parser.add_argument("--port", type=int, default=8000, help="TCP port; 0 = any free port (default: 8000)")
    parser.add_argument(
        "--models",
        default=None,
        help="stand-in shape per scenario model, LAYERSxWIDTH comma-separated (default: 6x512,4x384,2x256)",
    )
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="PyTorch threads per process (default: 1)"
    )
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the models' random weights")
    parser.add_argument(
        "--warmup-reps",
        type=int,
        default=2,
        help="warm-up batches per model and table batch size before serving (default: 2)",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=10.0,
        help="on SIGINT/SIGTERM, serve waiting requests this long before refusing them (default: 10)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help=f"connections open at once; a further one gets 503 and is closed (default: "
        f"{DEFAULT_MAX_CONNECTIONS}, or less if the open-files limit is lower)",
    )
    parser.add_argument("--ready-file", type=Path, default=None, help="write {url, pid} here once serving")
    return parser


def _config_from_args(args: argparse.Namespace) -> SystemConfig:
    config = load_scenario(args.scenario)
    if args.rate_per_s is not None:
        config = config.at_rate(args.rate_per_s)
    return config


def warm_up(worker: ModelWorker, config: SystemConfig, reps: int) -> None:
    """Run ``reps`` batches per model and table batch size (up to ``max_batch_size``)."""
    sizes = [b for b in config.timing.batch_sizes if b <= config.max_batch_size]
    for _ in range(reps):
        for model in range(config.n_models):
            for size in sizes:
                worker.run_batch(model, ["warm up"] * size)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server the command line asks for; returns the exit code (2 for bad input)."""
    return run_cli(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_range("--port", args.port, 0, 65535)
    if not _is_loopback(args.host) and not args.public:
        raise UsageError(f"--host {args.host!r} is not a loopback address; add --public to serve on it")
    check_range("--torch-threads", args.torch_threads, 1, 256)
    check_range("--warmup-reps", args.warmup_reps, 0, 100)
    check_range("--drain-timeout-s", args.drain_timeout_s, 0, 3600, "s")
    if args.rate_per_s is not None:
        check_range("--rate-per-s", args.rate_per_s, 1e-6, 1e6, "requests/s")
    try:
        max_connections = connection_cap(args.max_connections)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        config = _config_from_args(args)
    except ConfigError as exc:
        raise UsageError(f"--scenario: {exc}") from None
    try:
        shapes = parse_model_shapes(args.models, config.n_models)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        agent = make_agent(args.agent, config, tuned=not args.no_tuned)
    except (AgentSpecError, ConfigError) as exc:
        raise UsageError(f"--agent: {exc}") from None
    set_torch_threads(args.torch_threads)  # after make_agent: a checkpoint sets 1 thread itself
    worker = ModelWorker(build_models(shapes, seed=args.model_seed))
    warm_up(worker, config, args.warmup_reps)
    engine = BatchingEngine(config, agent, worker.run_batch)
    info = {
        "agent": args.agent,
        "describe": agent.describe(),
        "params": agent.params(),
        "params_source": getattr(agent, "params_source", "defaults"),
        "scenario": config.name,
        "models": {name: f"{s.layers}x{s.width}" for name, s in zip(config.model_names, shapes, strict=True)},
        "torch_threads": args.torch_threads,
    }
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = ServerOptions(args.host, args.port, args.drain_timeout_s, args.ready_file, max_connections)
    try:
        asyncio.run(serve(engine, json_ready(info), options))
    except OSError as exc:  # the address is taken or not ours
        raise UsageError(
            f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})"
        ) from None
    return 0


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists and NumPy scalars as Python numbers (for JSON answers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


if __name__ == "__main__":
    sys.exit(main())
