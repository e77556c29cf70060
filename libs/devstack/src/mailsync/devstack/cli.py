"""``mailsync-devstack``: start the local infrastructure for development, or prefetch the Kafka jars.

``up`` starts the servers, prints ``export NAME=value`` lines (eval-able; the start time follows as a
``#`` comment), then runs until SIGINT or SIGTERM and stops every server before exiting. If a server dies
while running, ``up`` stops the rest and exits with status 1, showing the tail of that server's log.
``fetch`` only resolves the Kafka jars into the cache (CI runs it before the tests). ``run`` is what
``make run`` does: the product in sandbox mode (the stack, both provider sandboxes and the four services, see
``mailsync.devstack.product``), a seeded demo world with traffic flowing both ways
(``mailsync.devstack.traffic``) and a printed guide (``mailsync.devstack.guide``); a process that exits on
its own stops everything with status 1.

Exit status: 0 after a clean stop, 1 on a start failure or a server that died, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from mailsync.devstack import guide, supervisor
from mailsync.devstack.errors import DevstackError
from mailsync.devstack.kafka import KAFKA_VERSION, KafkaSettings, fetch_kafka_jars
from mailsync.devstack.product import Product, ProductOptions
from mailsync.devstack.stack import ALL_COMPONENTS, ENV_VARS, Component, Stack
from mailsync.devstack.traffic import DemoTraffic

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType


def _components(text: str) -> list[Component]:
    try:
        return [Component(name.strip()) for name in text.split(",") if name.strip()]
    except ValueError as exc:
        names = ", ".join(c.value for c in Component)
        raise argparse.ArgumentTypeError(f"{exc}; choose from {names}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsync-devstack", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the servers and keep them running until Ctrl-C")
    up.add_argument(
        "--only",
        type=_components,
        default=list(ALL_COMPONENTS),
        help="comma-separated servers to start (default: kafka,mongodb,pubsub)",
    )
    for component in Component:
        up.add_argument(
            f"--{component.value}-port", type=int, default=None, help=f"fixed port for {component}"
        )
    up.add_argument("--kafka-partitions", type=int, default=3, help="default partitions of new topics")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds each server may take to start")
    commands.add_parser("fetch", help=f"resolve and cache the Kafka {KAFKA_VERSION} jars, then exit")
    run = commands.add_parser(
        "run", help="run the product in sandbox mode (stack, sandboxes, services, demo traffic) until Ctrl-C"
    )
    run.add_argument("--timeout", type=float, default=60.0, help="seconds each process may take to be ready")
    run.add_argument(
        "--traffic-interval", type=float, default=15.0, help="seconds between two rounds of demo traffic"
    )
    return parser


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _up(args: argparse.Namespace) -> int:
    ports = {c: port for c in Component if (port := getattr(args, f"{c.value}_port")) is not None}
    stack = Stack(
        ports=ports, kafka=KafkaSettings(num_partitions=args.kafka_partitions), start_timeout=args.timeout
    )
    # Explicit handlers: a shell may start us with SIGINT ignored (background jobs), and SIGTERM/SIGHUP
    # would otherwise end the interpreter without stopping the servers.
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        began = time.monotonic()
        seconds = stack.start(args.only)
        total = time.monotonic() - began
        for component in args.only:
            sys.stdout.write(f"export {ENV_VARS[component]}={stack.endpoint(component)}\n")
        detail = ", ".join(
            f"{c} from the environment" if stack.origin(c) == "environment" else f"{c} {s:.1f} s"
            for c, s in seconds.items()
        )
        sys.stdout.write(f"# started in {total:.1f} s ({detail}); run dir {stack.run_dir}; Ctrl-C stops\n")
        sys.stdout.flush()
        while True:
            time.sleep(1.0)
            for process in stack.processes():
                code = process.exit_code()
                if code is not None:
                    sys.stderr.write(process.describe_failure(f"exited unexpectedly with code {code}") + "\n")
                    return 1
    except KeyboardInterrupt:
        return 0
    except DevstackError as exc:
        sys.stderr.write(f"mailsync-devstack: {exc}\n")
        return 1
    finally:
        # A second Ctrl-C must not cut the clean stop short (it takes at most the grace period).
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    stack = Stack()
    product: Product | None = None
    traffic: DemoTraffic | None = None
    try:
        began = time.monotonic()
        stack.start()
        product = Product(stack, ProductOptions(ready_timeout=args.timeout))
        product.start()
        traffic = DemoTraffic(product.endpoints, sys.stdout, interval=args.traffic_interval)
        world = traffic.start()
        sys.stdout.write(guide.describe(product, world, time.monotonic() - began))
        sys.stdout.flush()
        return supervisor.watch(product.processes(), sys.stderr)
    except KeyboardInterrupt:
        return 0
    except (DevstackError, RuntimeError, TimeoutError) as exc:
        sys.stderr.write(f"mailsync-devstack: {exc}\n")
        return 1
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if traffic is not None:
            traffic.stop()
        if product is not None:
            product.stop()
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fetch() -> int:
    began = time.monotonic()
    try:
        libs = fetch_kafka_jars(environ=dict(os.environ))
    except DevstackError as exc:
        sys.stderr.write(f"mailsync-devstack: {exc}\n")
        return 1
    sys.stdout.write(f"Kafka {KAFKA_VERSION} jars in {libs} ({time.monotonic() - began:.1f} s)\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (also used as the process exit status)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    if args.command == "up":
        return _up(args)
    if args.command == "run":
        return _run(args)
    return _fetch()


if __name__ == "__main__":
    sys.exit(main())
