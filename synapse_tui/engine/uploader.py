"""One file's upload: the protocol state machine with its retries and recoveries.

The server's offset is the truth. After any request whose outcome is unknown, the state is
read back before anything is sent again; the local MD5/xxh3 state is kept at the server's
offset, re-hashing the prefix from disk only when the two disagree (resume, realignment).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from synapse_tui.engine.contexts import UploadContext
from synapse_tui.engine.errors import (
    AlreadyComplete,
    Busy,
    ChecksumMismatch,
    FileChangedError,
    OffsetMismatch,
    OutcomeUnknown,
    ProtocolError,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.events import JobRetrying, JobState
from synapse_tui.engine.hashing import (
    PIECE,
    HashPair,
    Identity,
    hash_prefix,
    io_executor,
    read_piece,
)
from synapse_tui.engine.job import WHOLE_FILE_LIMIT, Job, fits_whole
from synapse_tui.engine.protocol import UploadInfo
from synapse_tui.units import format_duration

__all__ = [
    "WHOLE_FILE_LIMIT",
    "FileUpload",
    "Job",
    "Paused",
    "Restart",
    "RetriesExhausted",
    "fits_whole",
]

T = TypeVar("T")

# A file this small is read and hashed on the engine's loop: ~50 us of work, less than the
# hand-off to a worker thread and back costs (measured: ~10% more files/s with 20 KiB files).
# The engine has a loop of its own (never the dashboard's), and the open() is inline already.
INLINE_READ_LIMIT = 64 << 10
# Retry lines say how long the job has been failing once it is this many seconds.
FAILING_NOTE_AFTER = 10.0
# A 409's Retry-After is obeyed up to this: the writer it waits for is usually our own
# timed-out request, which the server ends well before this.
MAX_BUSY_WAIT = 60.0


class Paused(Exception):
    """The job stopped at a chunk boundary because a pause was asked for."""


class RetriesExhausted(Exception):
    """The retry budget ran out; the job is left paused and resumable."""


class Restart(Exception):
    """The upload on the server is unusable: start a new one."""


class FileUpload:
    """Drives one job to DONE, or raises: FileError (fails), Paused, RetriesExhausted, fatal."""

    def __init__(self, ctx: UploadContext, job: Job) -> None:
        self.ctx = ctx  # what it may use of the manager (engine/contexts.py), nothing more
        self.job = job
        self.client = ctx.client
        self.journal = ctx.journal
        self.options = ctx.options
        self.loop = asyncio.get_running_loop()
        self.fd = -1
        self.completed = False
        # The file was opened and its identity checked just now, and nothing has run since
        # (no await that waited): the whole-file path's first check would repeat it.
        self.just_opened = False

    # -- helpers ----------------------------------------------------------------------------

    def _state(self, state: JobState, message: str = "") -> None:
        self.ctx.set_state(self.job, state, message)

    def _warn(self, message: str) -> None:
        self.ctx.log("warning", message, self.job.id)

    def _check_identity(self) -> None:
        st = os.fstat(self.fd)
        now = Identity.of(st)
        change = self.job.identity.describe_change(now)
        if change is None:
            try:
                path_now = Identity.of(os.stat(self.job.path))
            except OSError:
                change = "file was removed"
            else:
                change = self.job.identity.describe_change(path_now)
        if change:
            raise FileChangedError(f"changed during upload: {change}")

    async def _retry_pause(self, exc: TransientError) -> None:
        """Count a failed attempt and sleep its backoff; raise when the budget is spent."""
        job = self.job
        job.attempts += 1
        message = str(exc)
        self.journal.add_error(job.id, message)
        self.journal.update(job.id, attempts=job.attempts)
        job.last_error = message
        now = self.ctx.backoff.now()
        if job.failing_since is None:
            job.failing_since = now
        failing = now - job.failing_since
        if job.attempts > self.options.retries:
            over = f" over {format_duration(failing)}" if failing >= FAILING_NOTE_AFTER else ""
            raise RetriesExhausted(f"gave up after {job.attempts} attempts{over}: {message}")
        delay = self.ctx.backoff.delay(job.attempts, exc.retry_after)
        delay = max(delay, self.ctx.backoff.shared_wait())
        if isinstance(exc, Busy) and exc.wait is not None:  # this upload's, not every job's
            delay = max(delay, min(exc.wait, MAX_BUSY_WAIT))
        since = f", failing for {format_duration(failing)}" if failing >= FAILING_NOTE_AFTER else ""
        self.ctx.log(
            "warning",
            f"{job.display}: {message}; "
            f"retry {job.attempts}/{self.options.retries} in {delay:.1f}s{since}",
            job.id,
        )
        self.ctx.emit(JobRetrying(job.id, job.attempts, self.options.retries, delay, message))
        self.ctx.health.failing(message)
        await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Sleep, waking early for a pause or cancel (checked by the caller after)."""
        job = self.job
        job.wake.clear()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.wake.wait(), timeout=delay)
        if job.pause_requested:
            raise Paused()

    async def _with_retries(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent request (GET), retrying transient failures within the budget."""
        while True:
            await self._shared_wait()
            try:
                return await op()
            except TransientError as exc:
                await self._retry_pause(exc)

    async def _shared_wait(self) -> None:
        wait = self.ctx.backoff.shared_wait()
        if wait > 0:
            self.just_opened = False
            await self._sleep(wait)

    def _progress_made(self) -> None:
        """The retry budget resets when the offset passes the highest the server ever
        acknowledged: a server that drops back and takes the same bytes again makes none."""
        job = self.job
        if job.offset > job.high_water:
            job.high_water = job.offset
            job.reset_retries()
        self.ctx.health.ok()

    async def _not_kept(self, offset: int) -> None:
        """A chunk that did not move the server's offset costs one attempt of the budget."""
        await self._retry_pause(
            TransientError(f"server does not keep the data (offset stuck at {offset})")
        )

    # -- body -------------------------------------------------------------------------------

    def _body(
        self, start: int, length: int, hashes: HashPair | None, watchdog: asyncio.Timeout
    ) -> Callable[[], AsyncIterator[bytes]]:
        job = self.job
        options = self.options

        async def read_ahead(pos: int) -> bytes:
            n = min(PIECE, start + length - pos)
            rate = self.ctx.bandwidth.rate
            expected = n / rate if rate else 0.0
            watchdog.reschedule(self.loop.time() + options.stall_timeout + expected)
            await self.ctx.bandwidth.acquire(n)
            return await self.loop.run_in_executor(
                io_executor(), read_piece, self.fd, pos, n, hashes
            )

        async def gen() -> AsyncIterator[bytes]:
            # The next piece is read and hashed in a thread while this one is being sent
            # (one piece ahead: pieces still hash in order, memory stays at two pieces).
            pos = start
            end = start + length
            ahead: asyncio.Task[bytes] | None = asyncio.ensure_future(read_ahead(pos))
            try:
                while ahead is not None:
                    data = await ahead
                    n = len(data)
                    ahead = asyncio.ensure_future(read_ahead(pos + n)) if pos + n < end else None
                    yield data
                    pos += n
                    job.sent = pos
                    self.ctx.count_bytes(job, n)
            finally:
                if ahead is not None:
                    ahead.cancel()
            watchdog.reschedule(self.loop.time() + options.response_timeout)

        return gen

    # -- the procedure ----------------------------------------------------------------------

    async def run(self) -> None:
        from synapse_tui.engine.hashing import open_regular

        job = self.job
        self.fd, _ = open_regular(job.path, job.identity)
        self.just_opened = True
        try:
            while True:
                try:
                    if fits_whole(self.job):  # empty files included
                        await self._upload_whole()
                        return
                    await self._prepare()
                    if self.completed:
                        return  # the server had completed it (a lost finalize answer)
                    while job.offset < job.size:
                        self._checkpoint()
                        self._check_identity()
                        await self._send_chunk()
                    await self._finalize()
                    return
                except Restart as exc:
                    job.restarts += 1
                    if job.restarts > 3:
                        raise ProtocolError(f"gave up after 3 new uploads: {exc}") from None
                    self._warn(f"{job.display}: {exc}; starting a new upload")
                    self._reset_upload()
        finally:
            os.close(self.fd)

    def _checkpoint(self) -> None:
        if self.job.pause_requested:
            raise Paused()

    def _reset_upload(self) -> None:
        job = self.job
        job.upload_id = job.upload_url = None
        job.offset = job.sent = job.high_water = 0
        job.hashes = HashPair()
        job.chunk_hashes = None
        job.creating_since = None
        self.journal.update(job.id, upload_id=None, upload_url=None, offset=0, creating_since=None)

    async def _rehash(self, offset: int) -> HashPair:
        """MD5 + xxh3 of the first `offset` bytes, in a thread (resume / realignment)."""
        job = self.job
        if offset == 0:
            return HashPair()
        if job.hashes is not None and job.hashes.position == offset:
            return job.hashes
        if job.chunk_hashes is not None and job.chunk_hashes.position == offset:
            return job.chunk_hashes
        previous = job.state
        self._state(JobState.HASHING, f"re-hashing the {offset} bytes already on the server")
        started = time.monotonic()
        hashes = await self.loop.run_in_executor(io_executor(), hash_prefix, self.fd, offset)
        elapsed = time.monotonic() - started
        self.ctx.log(
            "info",
            f"{job.display}: re-hashed {offset} bytes in {elapsed:.2f}s",
            job.id,
        )
        self._state(previous if previous != JobState.HASHING else JobState.UPLOADING)
        return hashes

    async def _align_to(self, offset: int) -> None:
        """Adopt the server's offset: hash state and journal follow it."""
        job = self.job
        job.hashes = await self._rehash(offset)
        job.chunk_hashes = None
        job.offset = job.sent = offset
        self.journal.update(job.id, offset=offset)

    async def _prepare(self) -> None:
        """Establish the server's offset before sending: resume, adopt or start fresh."""
        job = self.job
        self._state(JobState.UPLOADING)
        if job.upload_url is None and job.creating_since is not None:
            await self._adopt_orphan()
        if job.upload_url is None:
            job.offset = job.sent = 0
            job.hashes = HashPair()
            return
        try:
            info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
        except UploadGone as exc:
            raise Restart(f"the upload to resume is gone ({exc})") from None
        if info.complete:
            # The finalize answer was lost, or a previous run finished without noting it.
            await self._complete_from_server(info)
            return
        if info.offset > job.size:
            raise Restart(f"server holds {info.offset} bytes, more than the file's {job.size}")
        if info.size is not None and info.size != job.size:
            raise Restart(f"the upload to resume is of {info.size} bytes, the file {job.size}")
        if info.expired():  # a PUT would be refused (410): no chunk sent for nothing
            raise Restart("the upload to resume has expired")
        if info.offset != job.offset or job.hashes is None:
            if info.offset:
                self.ctx.log("info", f"{job.display}: resuming at byte {info.offset}", job.id)
            job.resumed_from = info.offset
            self.journal.update(job.id, resumed_from=info.offset)
        await self._align_to(info.offset)
        job.high_water = info.offset

    async def _adopt_orphan(self) -> None:
        """A crash between creating the upload and noting its id: find it by name and size."""
        job = self.job
        first = min(job.chunk_size, job.size)
        try:
            uploads = await self._with_retries(lambda: self.client.list_uploads(job.name))
        except (UploadGone, ProtocolError) as exc:
            self._warn(f"{job.display}: cannot search the server's uploads ({exc})")
            job.creating_since = None
            self.journal.update(job.id, creating_since=None)
            return
        alike = [
            u for u in uploads if u.filename == job.name and not u.complete and u.offset == first
        ]
        # Only the few alike are looked up (by index): never the whole journal read, and
        # once this process's writes are in (awaited: the loop goes on meanwhile).
        await self.journal.settled()
        known = self.journal.known_upload_ids([u.id for u in alike])
        candidates = [u for u in alike if u.id not in known]
        if len(candidates) == 1:
            found = candidates[0]
            self.client.check_origin(found.url)
            job.upload_id, job.upload_url = found.id, found.url
            self.journal.update(
                job.id, upload_id=found.id, upload_url=found.url, creating_since=None
            )
            self.ctx.log(
                "info", f"{job.display}: found its upload {found.id} on the server", job.id
            )
        else:
            job.creating_since = None
            self.journal.update(job.id, creating_since=None)

    async def _send_chunk(self) -> None:
        job = self.job
        assert job.hashes is not None
        start = job.offset
        length = min(job.chunk_size, job.size - start)
        end = start + length
        while True:
            await self._shared_wait()
            self._checkpoint()
            reuse = job.chunk_hashes is not None and job.chunk_hashes.position == end
            working = None if reuse else job.hashes.copy()
            creating = job.upload_url is None
            if creating:
                job.creating_since = time.time()
                self.journal.update(job.id, creating_since=job.creating_since)
            try:
                async with asyncio.timeout(None) as watchdog:
                    info = await self.client.put_chunk(
                        job.upload_url,
                        job.name,
                        self._body(start, length, working, watchdog),
                        start,
                        length,
                        job.size,
                    )
            except TimeoutError:
                self._keep_read(working, end)
                await self._unknown_outcome(
                    OutcomeUnknown("no progress within the per-chunk deadline"), start, end
                )
                return
            except OffsetMismatch as exc:
                self._keep_read(working, end)
                if exc.expected <= start:  # it asks for what was just sent, or less
                    await self._not_kept(exc.expected)
                await self._realign(exc.expected, start, end)
                return
            except OutcomeUnknown as exc:
                self._keep_read(working, end)
                await self._unknown_outcome(exc, start, end)
                return
            except TransientError as exc:
                self._keep_read(working, end)
                job.sent = job.offset
                await self._retry_pause(exc)
                continue
            except UploadGone as exc:
                job.sent = job.offset
                if creating:
                    raise ProtocolError(f"cannot create an upload: {exc}") from None
                raise Restart(f"upload gone mid-way ({exc})") from None
            if creating:
                job.upload_id, job.upload_url = info.id, info.url
                job.creating_since = None
                self.journal.update(
                    job.id, upload_id=info.id, upload_url=info.url, creating_since=None
                )
            if info.offset != end:
                self._keep_read(working, end)
                if info.offset <= start:  # a 200 that kept nothing (or lost what it had)
                    await self._not_kept(info.offset)
                await self._realign(info.offset, start, end)
                return
            job.hashes = working if working is not None else job.chunk_hashes
            job.chunk_hashes = None
            job.offset = job.sent = end
            self.journal.update(job.id, offset=end)
            self._progress_made()
            return

    def _keep_read(self, working: HashPair | None, end: int) -> None:
        """A chunk read whole keeps its hash state, so a resend does not hash it again."""
        if working is not None and working.position == end:
            self.job.chunk_hashes = working
        self.job.sent = self.job.offset

    async def _realign(self, server_offset: int, start: int, end: int) -> None:
        job = self.job
        if server_offset == end:
            self.ctx.log("info", f"{job.display}: a lost acknowledgement; chunk had landed", job.id)
            await self._align_to(end)
            self._progress_made()
        elif server_offset == start:
            return
        elif server_offset < start:
            self._warn(f"{job.display}: server holds {server_offset} bytes; resending from there")
            await self._align_to(server_offset)
        else:
            raise Restart(f"server offset {server_offset} does not fit the chunk {start}-{end}")

    async def _unknown_outcome(self, exc: TransientError, start: int, end: int) -> None:
        """The request may have been applied: back off, then read the server's offset.

        The offset must read the same twice in a row before a chunk is resent, so a server
        still writing the first copy never meets a second, concurrent PUT.
        """
        job = self.job
        await self._retry_pause(exc)
        if job.upload_url is None:
            job.creating_since = job.creating_since or time.time()
            await self._adopt_orphan()
            if job.upload_url is None:
                return
            info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
            await self._realign(info.offset, start, end)
            return
        previous: int | None = None
        while True:
            try:
                info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
            except UploadGone as gone:
                raise Restart(f"upload gone mid-way ({gone})") from None
            if info.complete:
                raise ProtocolError("server marked the upload complete before it was finalized")
            if info.offset != start or info.offset == previous:
                break
            previous = info.offset
            await self._sleep(self.ctx.backoff.delay(1) + self.options.settle_delay)
        await self._realign(info.offset, start, end)

    async def _finalize(self) -> None:
        job = self.job
        assert job.hashes is not None and job.upload_url is not None
        self._check_identity()
        if job.hashes.xxh.hexdigest() != job.fingerprint:
            raise FileChangedError("changed during upload: content differs from the pre-scan")
        md5 = job.hashes.md5.hexdigest()
        job.md5 = md5
        self._state(JobState.FINALIZING)
        self.journal.update(job.id, md5=md5)
        while True:
            await self._shared_wait()
            answered = False  # the finalize POST answered 200 (else `info` is a GET's)
            try:
                info = await self.client.finalize(job.upload_url, md5, job.size)
                answered = True
            except (OutcomeUnknown, AlreadyComplete) as exc:
                if isinstance(exc, OutcomeUnknown):
                    await self._retry_pause(exc)
                info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
                if not info.complete and isinstance(exc, OutcomeUnknown):
                    continue  # counted already: finalize again
            except ChecksumMismatch:
                local = await self._rehash_whole()
                if local != md5:
                    raise FileChangedError(
                        "changed during upload: MD5 differs on re-read"
                    ) from None
                if job.restarts >= 1:
                    raise
                raise Restart("server checksum does not match the file's") from None
            except TransientError as exc:
                await self._retry_pause(exc)
                continue
            except UploadGone as exc:
                raise Restart(f"upload gone before finalize ({exc})") from None
            if info.complete:
                break
            if answered:  # a 200 that does not say complete: the server's state decides
                info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
                if info.complete:
                    break
            await self._retry_pause(TransientError(_not_completed(info)))
        await self._complete_from_server(info, md5)

    async def _rehash_whole(self) -> str:
        hashes = await self.loop.run_in_executor(io_executor(), hash_prefix, self.fd, self.job.size)
        return str(hashes.md5.hexdigest())

    async def _complete_from_server(self, info: UploadInfo, md5: str | None = None) -> None:
        job = self.job
        if md5 is None:
            self._check_identity()
            hashes = await self.loop.run_in_executor(io_executor(), hash_prefix, self.fd, job.size)
            if hashes.xxh.hexdigest() != job.fingerprint:
                raise FileChangedError("changed since the upload: content differs from the scan")
            md5 = str(hashes.md5.hexdigest())
        if info.offset != job.size:
            raise ProtocolError(f"server completed {info.offset} bytes of {job.size}")
        if info.checksum and info.checksum.lower() != md5:
            raise ChecksumMismatch(f"server checksum {info.checksum} differs from {md5}")
        self.completed = True
        self.ctx.finish(job, md5, info)

    async def _upload_whole(self) -> None:
        """Read, hash and send a small file in one request: one round trip instead of two.

        The bytes sent are the bytes hashed, and their xxh3 must match the pre-scan's. After
        a lost answer (or a crash mid-request) the server's list is searched first: a complete
        upload of this name, size and MD5 that no job of ours claims holds exactly these
        bytes, so it is adopted instead of sent again. A server that does not list checksums
        (drf-chunked-upload) cannot be asked, and there a resend may leave an unused copy.
        """
        job = self.job
        # Not journaled: the row goes from queued to done (a crash leaves it queued, with
        # its creating_since noted, and resume looks on the server before sending).
        self.ctx.set_state(job, JobState.UPLOADING, persist=False)
        while True:
            await self._shared_wait()
            self._checkpoint()
            if not self.just_opened:
                self._check_identity()
            self.just_opened = False
            hashes = HashPair()
            if job.size <= INLINE_READ_LIMIT:
                data = read_piece(self.fd, 0, job.size, hashes)
            else:
                data = await self.loop.run_in_executor(
                    io_executor(), read_piece, self.fd, 0, job.size, hashes
                )
            if hashes.xxh.hexdigest() != job.fingerprint:
                raise FileChangedError("changed since the pre-scan: content differs")
            md5 = job.md5 = str(hashes.md5.hexdigest())
            if job.creating_since is not None:
                found = await self._find_whole(md5)
                if found is not None:
                    info = found
                    break
            job.creating_since = time.time()
            self.ctx.note_creating(job)
            await self.ctx.bandwidth.acquire(job.size)

            async def body(data: bytes = data) -> AsyncIterator[bytes]:
                yield data

            try:
                info = await self.client.upload_whole(job.name, body, job.size, md5)
                break
            except ChecksumMismatch:
                if job.restarts >= 1:
                    raise
                job.restarts += 1
                job.creating_since = None  # refused: nothing was stored
                self._warn(f"{job.display}: server checksum does not match; sending it again")
            except OutcomeUnknown as exc:
                await self._retry_pause(exc)  # creating_since stays: look before resending
            except TransientError as exc:
                job.creating_since = None  # answered with an error: nothing was stored
                await self._retry_pause(exc)
            except UploadGone as exc:
                raise ProtocolError(f"cannot create an upload: {exc}") from None
        job.upload_id, job.upload_url = info.id, info.url
        job.creating_since = None  # the journal clears it as it notes the job complete
        self.ctx.count_bytes(job, job.size)
        if not info.complete:  # the server's state decides, not the POST's answer
            info = await self._with_retries(lambda: self.client.state(job.upload_url or ""))
        if not info.complete:
            # The bytes are there but the upload is not complete: finalize it as a chunked
            # upload would be (bounded by the retry budget, resumable after).
            if info.offset != job.size:
                raise ProtocolError(f"server holds {info.offset} bytes of {job.size}")
            self.journal.update(job.id, upload_id=info.id, upload_url=info.url, offset=info.offset)
            job.offset = job.sent = job.high_water = info.offset
            job.hashes = hashes
            await self._finalize()
            return
        await self._complete_from_server(info, md5)

    async def _find_whole(self, md5: str) -> UploadInfo | None:
        """The complete upload a lost whole-file POST may have left, proven by its MD5."""
        job = self.job
        try:
            uploads = await self._with_retries(lambda: self.client.list_uploads(job.name))
        except (UploadGone, ProtocolError) as exc:
            self._warn(f"{job.display}: cannot search the server's uploads ({exc})")
            job.creating_since = None
            return None
        same = [
            u for u in uploads if u.complete and u.filename == job.name and u.offset == job.size
        ]
        await self.journal.settled()
        known = self.journal.known_upload_ids([u.id for u in same])
        alike = [u for u in same if u.id not in known]
        for u in alike:
            if (u.checksum or "").lower() == md5:
                self.client.check_origin(u.url)
                self.ctx.log(
                    "info", f"{job.display}: found its upload {u.id} on the server", job.id
                )
                return u
        if any(not u.checksum for u in alike):
            self._warn(
                f"{job.display}: the server lists no checksums, so a lost upload cannot be "
                "found again; sending it again (the server may keep an unused copy)"
            )
        job.creating_since = None
        return None


def _not_completed(info: UploadInfo) -> str:
    done_at = "no completed_at" if not info.completed_at else f"completed_at {info.completed_at}"
    return f"server has not completed the upload after finalize (status {info.status}, {done_at})"
