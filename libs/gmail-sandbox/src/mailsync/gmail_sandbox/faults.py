"""Fault injection for the Gmail API routes: server errors, 429s, slow responses and timeouts.

A rule fires either for each matching call with probability ``rate`` (drawn from a seeded ``random.Random``,
so a test run is repeatable) or for the next ``count`` matching calls. Rules are checked in the order they
were added; the first that fires decides. Kinds:

* ``error``: answer ``status`` (500, 502, 503, 504 with Google's ``backendError`` body, or 429
  ``rateLimitExceeded`` with ``Retry-After``) without running the handler;
* ``slow``: wait ``delay_seconds`` and then run the handler normally;
* ``timeout``: wait ``delay_seconds`` (default 300) and drop the connection without any response.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_TIMEOUT_DEFAULT = 300.0


class FaultKind(StrEnum):
    """What an injected fault does."""

    ERROR = "error"
    SLOW = "slow"
    TIMEOUT = "timeout"


@dataclass
class FaultRule:
    """One injection rule; ``rate`` and ``count`` are exclusive (``count`` wins when both are set)."""

    rule_id: int
    kind: FaultKind
    status: int = 503
    rate: float = 1.0
    count: int | None = None
    delay_seconds: float = 0.0
    path_pattern: str | None = None
    fired: int = 0
    _compiled: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind is FaultKind.ERROR and self.status not in {429, 500, 502, 503, 504}:
            raise ValueError("status must be 429, 500, 502, 503 or 504")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if self.kind is FaultKind.TIMEOUT and not self.delay_seconds:
            self.delay_seconds = _TIMEOUT_DEFAULT
        self._compiled = re.compile(self.path_pattern) if self.path_pattern else None

    def applies_to(self, path: str) -> bool:
        """Whether the rule's path pattern (a regex searched in the path) matches."""
        return self._compiled is None or self._compiled.search(path) is not None

    def describe(self) -> dict[str, Any]:
        """JSON view for the admin API."""
        return {
            "id": self.rule_id,
            "kind": self.kind.value,
            "status": self.status,
            "rate": self.rate,
            "count": self.count,
            "delay_seconds": self.delay_seconds,
            "path_pattern": self.path_pattern,
            "fired": self.fired,
        }


class FaultInjector:
    """Holds the rules and the seeded randomness that decides whether a rate-based rule fires."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - seeded for repeatable runs, not security
        self._next_id = 1
        self.rules: list[FaultRule] = []

    def add(
        self,
        kind: FaultKind,
        *,
        status: int = 503,
        rate: float = 1.0,
        count: int | None = None,
        delay_seconds: float = 0.0,
        path_pattern: str | None = None,
    ) -> FaultRule:
        """Add a rule and return it.

        Raises:
            ValueError: invalid status, rate or pattern.
        """
        rule = FaultRule(self._next_id, kind, status, rate, count, delay_seconds, path_pattern)
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def pick(self, path: str) -> FaultRule | None:
        """Return the rule that fires for this call, consuming one use of a counted rule."""
        for rule in self.rules:
            if not rule.applies_to(path):
                continue
            if rule.count is not None:
                if rule.count <= 0:
                    continue
                rule.count -= 1
            elif self._rng.random() >= rule.rate:
                continue
            rule.fired += 1
            return rule
        return None

    def clear(self, seed: int | None = None) -> None:
        """Remove every rule and restart the randomness (optionally with a new seed)."""
        self.rules.clear()
        if seed is not None:
            self._seed = seed
        self._rng = random.Random(self._seed)  # noqa: S311 - seeded for repeatable runs, not security
