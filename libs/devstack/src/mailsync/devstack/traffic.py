"""The demo of `make run`: seed a world, then keep mail flowing both ways so a newcomer can watch it.

`DemoTraffic` runs in a thread of its own (with its own event loop), so the command line's main thread
keeps the signal handling and the process watch. It seeds `seed_demo`'s world, then every `interval`
seconds plays one round, each step through a public interface:

1. a contact writes to the Gmail user (sandbox admin API: mail arrives) - filed in the CRM (G1b, G3);
2. the user replies from Gmail (sandbox admin API: the user replies) - filed (G2);
3. the CRM answers in the same thread (`SendEmail` with a reply context) - sent through Gmail (S1, S6);
4. the CRM writes to the Outlook contact (`SendEmail`) - sent through Outlook (O1), and the contact
   replies in Outlook - filed (O2).

Each step prints one line; after each round the conversations' sizes (router read API) are printed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import aiohttp

from mailsync.common.contracts import ReplyContext
from mailsync.devstack.crm import Crm
from mailsync.devstack.seed import DemoWorld, Seeder, seed_demo

if TYPE_CHECKING:
    from typing import TextIO

    from mailsync.devstack.product import ProductEndpoints


class DemoTraffic:
    """Seeds the demo world and generates traffic until `stop`."""

    def __init__(self, endpoints: ProductEndpoints, out: TextIO, *, interval: float = 15.0) -> None:
        """Write progress lines to `out`; play a round every `interval` seconds."""
        self.endpoints = endpoints
        self.out = out
        self.interval = interval
        self.world: DemoWorld | None = None
        self.error: BaseException | None = None
        self._seeded = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="demo-traffic", daemon=True)

    def start(self, *, timeout: float = 120.0) -> DemoWorld:
        """Start the thread and wait until the world is seeded; raise what seeding raised."""
        self._thread.start()
        if not self._seeded.wait(timeout):
            self.stop()
            raise TimeoutError(f"seeding the demo took more than {timeout:g} s")
        if self.error is not None or self.world is None:
            raise RuntimeError(f"seeding the demo failed: {self.error!r}") from self.error
        return self.world

    def stop(self) -> None:
        """Ask the thread to stop and wait a little for it (it is a daemon thread)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread, which owns the exit status
            self.error = exc
        finally:
            self._seeded.set()

    async def _run(self) -> None:
        async with Crm(self.endpoints) as crm, aiohttp.ClientSession() as http:
            seeder = Seeder(self.endpoints, crm, http)
            try:
                self.world = await seed_demo(seeder)
                self._seeded.set()
                round_number = 0
                while not self._stopping.is_set():
                    round_number += 1
                    try:
                        await self._round(round_number, self.world, seeder, crm)
                    except Exception as exc:  # noqa: BLE001 - the demo keeps going; the line says what failed
                        self._say(f"round {round_number} failed: {exc!r}")
                    await self._pause(self.interval)
            finally:
                await seeder.close()

    async def _pause(self, seconds: float) -> None:
        await asyncio.to_thread(self._stopping.wait, seconds)

    def _say(self, line: str) -> None:
        self.out.write(f"{time.strftime('%H:%M:%S')}  {line}\n")
        self.out.flush()

    async def _round(self, n: int, world: DemoWorld, seeder: Seeder, crm: Crm) -> None:
        ada, charles = world.gmail_user, world.gmail_contact
        subject = f"Question #{n}"
        inbound = await seeder.gmail.deliver_inbound(
            ada.address, sender=charles.address, subject=subject, text=f"Hello Ada, question number {n}."
        )
        self._say(f"{charles.address} wrote to {ada.address} (Gmail): {subject!r}")
        await self._pause(2.0)
        reply = await seeder.gmail.reply_as_user(ada.address, inbound["id"], f"Answer to question {n}.")
        self._say(f"{ada.address} replied from Gmail: {reply['headers'].get('Subject')!r}")
        await self._pause(2.0)
        message_id = reply["headers"]["Message-ID"]
        references = (inbound["headers"]["Message-ID"], message_id)
        request_id = await crm.send_email(
            subaccount_id=world.subaccount_id,
            user_id=ada.user_id,
            contact_id=charles.contact_id,
            to=[charles.address],
            subject=f"Re: {subject}",
            text=f"A follow-up from the CRM on question {n}.",
            reply_context=ReplyContext(
                provider_thread_id=reply["threadId"], in_reply_to=message_id, references=references
            ),
        )
        result = await crm.result(request_id)
        self._say(f"the CRM replied in the Gmail thread: {result.status} via {result.route}")

        grace, alan = world.outlook_user, world.outlook_contact
        request_id = await crm.send_email(
            subaccount_id=world.subaccount_id,
            user_id=grace.user_id,
            contact_id=alan.contact_id,
            to=[alan.address],
            subject=f"Offer #{n}",
            text=f"Dear Alan, here is offer {n}.",
        )
        result = await crm.result(request_id)
        self._say(f"the CRM wrote to {alan.address} through Outlook: {result.status} via {result.route}")
        if result.provider_message_id is not None:
            await self._pause(1.0)
            await seeder.graph.deliver_inbound(
                grace.address,
                sender=alan.address,
                body=f"Thanks, offer {n} looks good.",
                in_reply_to=result.provider_message_id,
            )
            self._say(f"{alan.address} replied in Outlook")
        await self._pause(3.0)
        gmail_side = await crm.conversation(world.subaccount_id, charles.contact_id)
        outlook_side = await crm.conversation(world.subaccount_id, alan.contact_id)
        self._say(
            f"CRM conversations now hold {len(gmail_side)} messages with {charles.address} and "
            f"{len(outlook_side)} with {alan.address}"
        )
