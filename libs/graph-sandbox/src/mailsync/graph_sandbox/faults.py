"""Fault injection, the same model as the Gmail sandbox: rules that fire at a seeded rate or for the next N
calls.

A rule has a ``kind``:

* ``error``: answer ``status`` (default 503) with Graph's error body (code defaults per status) and, when
  ``retry_after_s`` is set, a ``Retry-After`` header (Graph sends one on some 503/504s).
* ``throttle``: answer 429 ``TooManyRequests`` with ``Retry-After``.
* ``timeout``: hold the request for ``delay_s`` (default 60 s) and then answer 504, so the client's own
  timeout
  fires first.
* ``slow``: delay the request by ``delay_s`` and then serve it normally (it holds a concurrency slot
  meanwhile).

``count`` makes a rule fire for the next N matching calls and then retire; otherwise it fires with probability
``rate`` drawn from a generator seeded with ``seed``, so a run is reproducible. ``scope`` is ``graph`` (the
``/v1.0`` API), ``identity`` (the login endpoints) or ``all``; ``path_contains`` and ``method`` narrow it.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

from mailsync.graph_sandbox.errors import GraphError

_DEFAULT_CODES = {
    500: "generalException",
    502: "BadGateway",
    503: "serviceNotAvailable",
    504: "GatewayTimeout",
}
KINDS = frozenset({"error", "throttle", "timeout", "slow"})
SCOPES = frozenset({"graph", "identity", "all"})


@dataclasses.dataclass
class FaultRule:
    """One injected fault."""

    id: int
    kind: str
    scope: str = "graph"
    rate: float = 1.0
    count: int | None = None
    status: int = 503
    code: str | None = None
    retry_after_s: int | None = None
    delay_s: float = 60.0
    path_contains: str | None = None
    method: str | None = None
    fired: int = 0

    def applies_to(self, scope: str, method: str, path: str) -> bool:
        """Whether the rule targets this request."""
        return (
            (self.scope in ("all", scope))
            and (self.method is None or self.method.upper() == method.upper())
            and (self.path_contains is None or self.path_contains in path)
        )

    def as_error(self) -> GraphError:
        """The response an ``error``/``throttle``/``timeout`` rule gives."""
        if self.kind == "throttle":
            return GraphError(
                429,
                "TooManyRequests",
                "Please retry again later.",
                headers={"Retry-After": str(self.retry_after_s or 10)},
            )
        status = 504 if self.kind == "timeout" else self.status
        headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}
        code = self.code or _DEFAULT_CODES.get(status, "UnknownError")
        return GraphError(
            status, code, "The service is temporarily unavailable (injected fault).", headers=headers
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as the admin API shows it."""
        return dataclasses.asdict(self)


class FaultInjector:
    """The active rules and the seeded random source deciding rate-based ones."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible fault sampling, not cryptography
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from its admin-API JSON. Raises ``ValueError`` for a bad spec."""
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        scope = spec.get("scope", "graph")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {sorted(SCOPES)}")
        rate = float(spec.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        count = spec.get("count")
        if "seed" in spec:
            self._random.seed(int(spec["seed"]))
        rule = FaultRule(
            id=next(self._ids),
            kind=kind,
            scope=scope,
            rate=rate,
            count=None if count is None else int(count),
            status=int(spec.get("status", 503)),
            code=spec.get("code"),
            retry_after_s=None if spec.get("retry_after_s") is None else int(spec["retry_after_s"]),
            delay_s=float(spec.get("delay_s", 60.0)),
            path_contains=spec.get("path_contains"),
            method=spec.get("method"),
        )
        self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[FaultRule]:
        """Active rules in the order they are checked."""
        return list(self._rules)

    def pick(self, scope: str, method: str, path: str) -> FaultRule | None:
        """The first rule that fires for this request, if any (count-based rules retire when spent)."""
        for rule in list(self._rules):
            if not rule.applies_to(scope, method, path):
                continue
            if rule.count is not None:
                if rule.fired >= rule.count:
                    continue
                rule.fired += 1
                if rule.fired >= rule.count:
                    self._rules.remove(rule)
                return rule
            if self._random.random() < rule.rate:
                rule.fired += 1
                return rule
        return None

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()
