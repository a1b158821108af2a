"""The stream a unary RPC's handler gets from the transport (:mod:`.transport`): grpclib's, whose
message is read within the limits, and whose errors end it with gRPC's code (:mod:`.status`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import Deadline

from online_inference.app.dataplane.admission import FIXED_BYTES, Admission, Ticket, values_in
from online_inference.app.errors import InvalidInput, PayloadTooLarge, RequestTimeout, ServiceError, summary
from online_inference.app.grpc.status import status_of

if TYPE_CHECKING:
    from online_inference.app.grpc.transport import GrpcServer

log = logging.getLogger(__name__)

SMALL_MESSAGE = 64 * 1024  # the message of an RPC that is not work (names, ids): never refused for load


class Call:
    """The stream an RPC's handler gets: grpclib's, whose :meth:`recv_message` reads within the
    limits (see the module). Everything else is grpclib's stream's. A unary RPC's one message must
    come within ``TIMEOUT_BODY``; a streaming RPC's messages (health's Watch, reflection's) are
    bounded in size only, each charged while it is read."""

    def __init__(self, stream: Any, server: GrpcServer, work: bool, deadline: Deadline | None, unary: bool = True) -> None:
        self.stream = stream
        self.server = server
        self.work = work
        self.deadline = deadline
        self.unary = unary
        self.began = time.monotonic()
        self.ticket: Ticket | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def __aiter__(self) -> Call:
        return self

    async def __anext__(self) -> Any:
        message = await self.recv_message()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv_message(self) -> Any:
        """The next message; None when a streaming RPC's client has sent its last."""
        limit, name = (self.server.limits.max_message, "MAX_BODY_BYTES") if self.work else (SMALL_MESSAGE, "not work")
        self.release()  # what the last message held
        prefix = await self.read(5)
        if not prefix and not self.unary:
            return None
        if len(prefix) != 5:
            raise InvalidInput("the RPC ended before its message" if not prefix else "the RPC ended inside its message's prefix")
        if prefix[0]:
            raise GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported; send them uncompressed")
        length = int.from_bytes(prefix[1:], "big")
        if length > limit:
            raise PayloadTooLarge(f"a message of {length} bytes is over the limit of {limit} ({name})")
        self.ticket = self.charge(length)
        body = await self.read(length)
        if len(body) != length:
            raise InvalidInput(f"the RPC ended inside its message ({len(body)} of the {length} bytes its prefix says)")
        self.ticket.body_read()
        if self.work:
            self.ticket.hold_values(values_in(length, None))
            await self.server.queue.enter(self.ticket)
        if self.deadline is not None and self.deadline.time_remaining() <= 0:
            raise GRPCError(Status.DEADLINE_EXCEEDED, "the deadline passed before the work started")
        try:
            message = self.stream._recv_type.FromString(body)
        except DecodeError as error:
            raise InvalidInput(f"the message is not a valid {self.stream._recv_type.DESCRIPTOR.full_name}: {error}") from None
        if not self.unary:
            self.release()  # a streaming RPC holds nothing while it waits (a Watch, for as long as it is open)
        return message

    async def send_message(self, message: Any) -> None:
        """grpclib's send, within ``TIMEOUT_BODY``: a client that does not take its answer (HTTP/2's
        flow control holds it) has its stream reset, and the RPC holds nothing any more."""
        try:
            async with asyncio.timeout(self.server.limits.body_timeout):
                await self.stream.send_message(message)
        except TimeoutError:
            log.info("gRPC: an answer not taken within TIMEOUT_BODY: its stream is reset")
            await self.stream.cancel()

    async def read(self, size: int) -> bytes:
        """``size`` bytes of the message (fewer: the stream ended), within ``TIMEOUT_BODY`` of a unary
        RPC's start."""
        left = self.began + self.server.limits.body_timeout - time.monotonic() if self.unary else None
        try:
            async with asyncio.timeout(None if left is None else max(left, 0)):
                data = await self.stream._stream.recv_data(size)
        except TimeoutError:
            raise RequestTimeout("the message did not come within TIMEOUT_BODY") from None
        except AssertionError:  # grpclib's: the stream ended with fewer bytes
            raise InvalidInput(f"the RPC ended inside its message (fewer than the {size} bytes expected)") from None
        return data

    def charge(self, length: int) -> Ticket:
        admission: Admission = self.server.admission
        if self.work:
            return admission.admit(length, False, self.began)
        return admission.count(FIXED_BYTES + length, length, self.began)

    async def refuse(self, error: ServiceError) -> None:
        """The RPC's end with ``error``'s code and message (REST's ``error``), unless it has ended."""
        if self.stream._send_trailing_metadata_done or self.stream._stream._transport.is_closing():
            return
        metadata = {} if error.retry_after is None else {"retry-after": str(error.retry_after)}  # seconds, as REST's
        await self.stream.send_trailing_metadata(status=status_of(error), status_message=summary(error), metadata=metadata)

    def release(self) -> None:
        if self.ticket is not None:
            self.ticket.release()
            self.ticket = None
