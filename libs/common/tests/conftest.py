"""Fixtures for the common lib's infrastructure tests: settings isolated per test on the real servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailsync.common.settings import ServiceSettings


@pytest.fixture
def service_settings(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> ServiceSettings:
    """Settings on the test stack with a topic prefix and database of the test's own."""
    return ServiceSettings(
        service_name="common-test",
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_topic_prefix=unique_name("t") + ".",
        mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        mongodb_database=unique_name("db"),
        kafka_max_attempts=3,
    )
