"""The product under test: started once per session as separate processes, seeded only through its public
interfaces.

`product` starts both provider sandboxes and the four services (`mailsync.devstack.product`) on the session's
Kafka broker, MongoDB-wire server and Pub/Sub emulator, on free ports, with a topic and database prefix of its
own. `crm` is the CRM stand-in (directory events and send commands in, results and conversation events out),
`seeder` creates mailboxes at the providers, CRM users and contacts, and connects mailboxes through the real
OAuth redirects. Every scenario uses its own subaccount and mailbox addresses (`fresh`), so scenarios share
the running product without seeing each other's mail. On a failure, the tail of every process log is shown.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from mailsync.devstack.crm import Crm
from mailsync.devstack.process import log_tail
from mailsync.devstack.product import Product, ProductOptions, ProductPorts
from mailsync.devstack.seed import Seeder
from mailsync.devstack.stack import Stack, StackEndpoints

# Sending 500 messages (S3) at Gmail's 15,000 units per user per minute (100 units a send) takes over three
# minutes; the sandbox's per-minute quota is raised so the daily limit, not the minute quota, is what binds.
E2E_GMAIL_QUOTA_UNITS_PER_MINUTE = 1_000_000


@pytest.fixture(scope="session")
def product(devstack: StackEndpoints, mailsync_stack: Stack) -> Iterator[Product]:
    """The whole product, running for the session."""
    del devstack  # requested so that all three servers run
    run = uuid.uuid4().hex[:8]
    running = Product(
        mailsync_stack,
        ProductOptions(
            ports=ProductPorts.free(),
            topic_prefix=f"e2e-{run}.",
            database_prefix=f"e2e_{run}_",
            gmail_quota_units_per_minute=E2E_GMAIL_QUOTA_UNITS_PER_MINUTE,
            log_format="json",
        ),
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed e2e test, attach the tail of each process log to the report."""
    report: pytest.TestReport = yield
    product: Product | None = getattr(item, "funcargs", {}).get("product")
    if report.failed and product is not None:
        for process in product.processes():
            report.sections.append((f"log of {process.name}", log_tail(process.log_path, 30)))
    del call
    return report


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crm(product: Product) -> AsyncIterator[Crm]:
    """The CRM stand-in, reading mailsync's output topics from their beginning."""
    async with Crm(product.endpoints) as client:
        yield client


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The user's browser and the CRM backend's HTTP client."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def seeder(product: Product, crm: Crm, http: aiohttp.ClientSession) -> AsyncIterator[Seeder]:
    """Creates provider mailboxes, CRM users and contacts, and connections."""
    seeding = Seeder(product.endpoints, crm, http)
    try:
        yield seeding
    finally:
        await seeding.close()


@pytest.fixture
def fresh() -> Callable[[str], str]:
    """`fresh("sub")` -> `"sub_1a2b3c4d"`: ids and address local parts no other scenario uses."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:8]}"

    return make
