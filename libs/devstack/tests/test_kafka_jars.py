"""Resolving the Kafka jars: once per cache, atomically. A fake ``mvn`` stands in for Maven Central."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from mailsync.devstack.errors import DevstackError
from mailsync.devstack.kafka import KAFKA_VERSION, fetch_kafka_jars

if TYPE_CHECKING:
    from pathlib import Path

# Records each call, writes one jar into -DoutputDirectory, then exits with $FAKE_MVN_EXIT.
FAKE_MVN = """#!/bin/sh
echo called >> "$FAKE_MVN_CALLS"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
done
echo jar > "$out/kafka_2.13-4.1.1.jar"
echo "[ERROR] Could not transfer artifact from central"
exit "$FAKE_MVN_EXIT"
"""


@pytest.fixture
def fake_tools(tmp_path: Path) -> dict[str, str]:
    tools = tmp_path / "bin"
    tools.mkdir()
    mvn = tools / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    java = shutil.which("java")
    assert java is not None, "the test needs java on PATH only to pass the tool check"
    (tools / "java").symlink_to(java)
    return {"PATH": f"{tools}:/bin:/usr/bin", "FAKE_MVN_CALLS": str(tmp_path / "calls")}


def test_jars_are_resolved_once_and_then_reused(tmp_path: Path, fake_tools: dict[str, str]) -> None:
    environ = {**fake_tools, "FAKE_MVN_EXIT": "0"}
    libs = fetch_kafka_jars(cache_root=tmp_path / "cache", environ=environ)
    again = fetch_kafka_jars(cache_root=tmp_path / "cache", environ=environ)

    assert libs == again == tmp_path / "cache" / "kafka" / KAFKA_VERSION / "libs"
    assert [p.name for p in libs.iterdir()] == ["kafka_2.13-4.1.1.jar"]
    assert (tmp_path / "calls").read_text().splitlines() == ["called"]


def test_failed_resolution_leaves_no_half_filled_cache(tmp_path: Path, fake_tools: dict[str, str]) -> None:
    environ = {**fake_tools, "FAKE_MVN_EXIT": "1"}
    with pytest.raises(DevstackError, match="Could not transfer artifact") as caught:
        fetch_kafka_jars(cache_root=tmp_path / "cache", environ=environ)

    version_dir = tmp_path / "cache" / "kafka" / KAFKA_VERSION
    assert "Maven could not resolve Kafka" in str(caught.value)
    assert not (version_dir / "libs").exists()
    assert list(version_dir.glob("libs.partial-*")) == []
