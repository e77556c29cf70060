"""Pull mode: google-cloud-pubsub streaming pull of the Gmail watch subscription.

Used where Pub/Sub cannot push to the service. The client library calls the callback on its own threads; each
message is handed to the event loop, and acked only after the handler finished (the hint is on Kafka), nacked
otherwise, so Pub/Sub redelivers it. A malformed message is acked after being counted: redelivering it can
never succeed. Flow control bounds the messages in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], Coroutine[Any, Any, None]]


class StreamingPull:
    """One streaming-pull subscription; :meth:`start` and :meth:`stop` run on the event loop."""

    def __init__(
        self,
        subscription: str,
        handler: MessageHandler,
        *,
        emulator_host: str | None,
        max_messages: int = 100,
    ) -> None:
        self._subscription = subscription
        self._handler = handler
        self._emulator_host = emulator_host
        self._max_messages = max_messages
        self._client: Any = None
        self._future: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Open the stream."""
        from google.cloud import pubsub_v1  # noqa: PLC0415 - the gRPC stack loads only in pull mode

        self._loop = asyncio.get_running_loop()
        if self._emulator_host:
            import grpc  # type: ignore[import-untyped]  # noqa: PLC0415
            from google.pubsub_v1.services.subscriber.transports import (  # noqa: PLC0415
                SubscriberGrpcTransport,
            )

            transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self._emulator_host))
            self._client = pubsub_v1.SubscriberClient(transport=transport)
        else:
            self._client = pubsub_v1.SubscriberClient()
        flow = pubsub_v1.types.FlowControl(max_messages=self._max_messages)
        self._future = self._client.subscribe(self._subscription, self._on_message, flow_control=flow)
        logger.info("streaming pull started", extra={"subscription": self._subscription})

    def _on_message(self, message: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            message.nack()
            return
        future = asyncio.run_coroutine_threadsafe(self._handler(bytes(message.data)), loop)
        try:
            future.result(timeout=60)
        except (Exception, concurrent.futures.CancelledError):
            logger.warning("pulled notification not handled; nacked for redelivery", exc_info=True)
            message.nack()
            return
        message.ack()

    async def stop(self) -> None:
        """Cancel the stream and close the client."""
        if self._future is not None:
            self._future.cancel()
            try:
                await asyncio.to_thread(self._future.result, 10)
            except (Exception, concurrent.futures.CancelledError):
                logger.debug("streaming pull ended", exc_info=True)
            self._future = None
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None
