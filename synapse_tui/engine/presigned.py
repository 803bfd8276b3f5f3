"""Direct-to-storage uploads through presigned URLs (the SDK's bulk path), with resume.

`run_upload` picks the path per job: presigned when the strategy allows it and the
backend's storage takes it (`presigned_batch.PresignedService.discover`), chunked
otherwise. A presigned job: get its URLs (batched with the next queued small files),
hash the file once (SHA1 for the confirm, xxh3 against the pre-scan, MD5 per part for
Content-MD5), PUT it (one request, or its parts in parallel within the concurrency gate
and the bandwidth limit, each streamed from disk), then confirm it (batched).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import xxhash

from synapse_tui.engine.answers import DETAIL_LIMIT, confirm_refusal
from synapse_tui.engine.contexts import UploadContext
from synapse_tui.engine.errors import (
    ChecksumMismatch,
    FileChangedError,
    ProtocolError,
    ServerRejected,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.events import JobState
from synapse_tui.engine.hashing import PIECE, io_executor, open_regular, read_piece
from synapse_tui.engine.job import WHOLE_FILE_LIMIT, Job
from synapse_tui.engine.names import escape_text
from synapse_tui.engine.presigned_batch import BATCH, EXPIRY_MARGIN, PresignedService
from synapse_tui.engine.presigned_hash import NEVER, hash_parts, ignore_parts, md5_range
from synapse_tui.engine.presigned_journal import Grant
from synapse_tui.engine.protocol import UploadInfo
from synapse_tui.engine.steps import as_id
from synapse_tui.engine.storage_http import UrlExpired
from synapse_tui.engine.uploader import FileUpload, Restart, RetriesExhausted

if TYPE_CHECKING:
    from synapse_tui.engine.scheduler import UploadManager

STRATEGIES = ("auto", "presigned", "chunked")
PART_POLL = 0.1  # how often a multipart job looks for a free concurrency slot
_services: weakref.WeakKeyDictionary[Any, PresignedService] = weakref.WeakKeyDictionary()


def service(manager: UploadManager) -> PresignedService:
    svc = _services.get(manager)
    if svc is None:
        svc = _services[manager] = PresignedService(manager)
    return svc


async def close(manager: UploadManager) -> None:
    """The manager closes: its service's early storage question ends (`end_early`)."""
    if (svc := _services.get(manager)) is not None:
        await svc.end_early()


async def run_upload(manager: UploadManager, job: Job) -> None:
    """Upload one job by the path its strategy and the backend allow."""
    svc = service(manager)
    await svc.records.open()  # once per manager: its tables, off the loop
    if await _presigned_for(svc, job):
        svc.running += 1
        try:
            await PresignedUpload(manager, job, svc).run()
        finally:
            svc.running -= 1
    else:
        await FileUpload(manager, job).run()


async def _presigned_for(svc: PresignedService, job: Job) -> bool:
    if svc.m.options.strategy == "chunked" or job.upload_url is not None:
        if await svc.known(job) is not None:
            svc.drop(job)  # chunked from now on: the storage's URLs are no use
        return False
    try:
        capable = await svc.discover()
    except TransientError as exc:  # the backend is unwell: the chunked path retries
        if not svc.why_not:
            svc.why_not = f"cannot ask for the storage ({exc}); chunked meanwhile"
            svc.m.log("warning", svc.why_not, job.id)
        return False
    if not capable:
        svc.strategy_refused()
        if await svc.known(job) is not None:
            svc.drop(job)
    return capable


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class PresignedUpload(FileUpload):
    """Drives one job through the presigned path (retries and pauses as FileUpload's)."""

    def __init__(self, ctx: UploadContext, job: Job, svc: PresignedService) -> None:
        super().__init__(ctx, job)
        self.svc = svc
        self.storage = svc.storage

    async def run(self) -> None:
        job = self.job
        self.fd, _ = open_regular(job.path, job.identity)
        try:
            while True:
                try:
                    await self._once()
                    return
                except TransientError as exc:
                    # The backend's URL, renewal or confirm requests spent their retries
                    # (the storage's PUTs end in RetriesExhausted already): resumable, as
                    # the chunked path leaves a file the backend is down for.
                    raise RetriesExhausted(f"gave up: {exc}") from None
                except Restart as exc:
                    job.restarts += 1
                    if job.restarts > 3:
                        raise ProtocolError(f"gave up after 3 new uploads: {exc}") from None
                    self._warn(f"{job.display}: {exc}; starting the file again")
                    self.svc.drop(job)
        except asyncio.CancelledError:
            if job.cancel_requested and self.svc.has_grant(job):
                # Queued again in this session, it goes on with its grant (a later
                # session finds the grant in the journal: presigned_journal.find_cancelled).
                self.svc.m.intake.cancelled[(job.path, job.fingerprint)] = job
            raise
        finally:
            os.close(self.fd)

    async def _once(self) -> None:
        job = self.job
        self.ctx.set_state(job, JobState.UPLOADING, persist=False)
        grant = await self.svc.grant(job)
        if grant.multipart:
            sha1, md5, parts = await self._multipart(grant)
        else:
            sha1, md5 = await self._single(grant)
            parts = None
        self._check_identity()
        item: dict[str, Any] = {"file_key": grant.file_key, "checksum": sha1, "size": job.size}
        if parts is not None:
            item["multipart"] = {"upload_id": grant.upload_id, "parts": parts}
        self.ctx.set_state(job, JobState.FINALIZING, persist=False)
        result = await self._confirm(item)
        if not result.get("success"):
            # Server text: escaped (it reaches terminals, logs and the journal), and cut.
            self._refused(escape_text(str(result.get("error") or "refused"))[:DETAIL_LIMIT])
        data_file = result.get("data_file_id")
        job.steps.data_file_id = as_id(data_file)
        job.steps.checksum, job.steps.file_key = sha1, grant.file_key
        info = UploadInfo(
            id=grant.file_key,
            url="",
            offset=job.size,
            status=2,
            filename=job.name,
            completed_at=None,
            checksum=sha1,
        )  # the journal keeps its record(); file key and data file are in job.steps
        self.svc.drop(job, lazy=True)
        self.ctx.finish(job, md5, info)

    async def _confirm(self, item: dict[str, Any]) -> dict[str, Any]:
        """Wait for the batched confirm without holding a concurrency slot: the bytes are
        sent, and the next files' PUTs go on meanwhile (holding it, PUTs stalled for every
        confirm). At most a batch of jobs waits like this; then they keep their slots."""
        gate = self.ctx.gate
        if len(self.svc.waiting) >= BATCH:
            return await self.svc.confirm(item)
        await gate.release()
        self.ctx.kick()
        try:
            return await self.svc.confirm(item)
        finally:
            # Taken back whatever the capacity, for the release when the job ends: no I/O
            # happens before it, so the gate is over by at most a few finishing jobs.
            gate._held += 1

    def _refused(self, error: str) -> None:
        kind = confirm_refusal(error)
        if kind == "checksum":
            self._check_identity()
            if self.job.restarts >= 1:
                raise ChecksumMismatch(f"the storage holds other bytes than the file: {error}")
            raise Restart(f"confirm refused: {error}")
        if kind == "again":
            raise Restart(f"confirm refused: {error}")
        raise ServerRejected(f"confirm refused: {error}", status=400)

    # -- one PUT --------------------------------------------------------------------------------

    async def _single(self, grant: Grant) -> tuple[str, str]:
        job = self.job
        self._check_identity()
        body: bytes | None = None
        if job.size <= WHOLE_FILE_LIMIT:  # read whole: at most a MiB in memory
            body = read_piece(self.fd, 0, job.size, None)
            if xxhash.xxh3_128(body).hexdigest() != job.fingerprint:
                raise FileChangedError("changed since the pre-scan: content differs")
            digest = hashlib.md5(body).digest()
            sha1 = hashlib.sha1(body).hexdigest()
        else:  # hashed in one pass, then streamed from disk in a second
            sha1, xxh, whole = await self.loop.run_in_executor(
                io_executor(), hash_parts, self.fd, job.size, job.size, ignore_parts, NEVER
            )
            if xxh != job.fingerprint:
                raise FileChangedError("changed since the pre-scan: content differs")
            digest = bytes.fromhex(whole)
        await self._put(grant, None, 0, job.size, _b64(digest), body)
        return sha1, digest.hex()

    async def _put(
        self,
        grant: Grant,
        number: int | None,
        start: int,
        length: int,
        md5: str,
        data: bytes | None = None,
    ) -> str:
        """PUT a file (number None) or one part; retries, renews expired URLs; the ETag."""
        job = self.job
        renewed = False
        while True:
            await self._shared_wait()
            self._checkpoint()
            if grant.expires_at - EXPIRY_MARGIN < time.time() and not renewed:
                renewed = await self._renew(grant)
            part = grant.parts.get(number) if number is not None else None
            url = part.url if part is not None else grant.url
            if url is None:
                raise ProtocolError(f"no URL for part {number}")
            sent = [0]
            failure: TransientError
            try:
                async with asyncio.timeout(None) as watchdog:
                    if data is not None:
                        await self.ctx.bandwidth.acquire(length)
                        watchdog.reschedule(self.loop.time() + self.options.response_timeout)
                        etag = await self.storage.put(url, data, length, md5)
                        self.ctx.count_bytes(job, length)
                        job.sent += length
                    else:
                        body = self._range(start, length, watchdog, sent)
                        etag = await self.storage.put(url, body, length, md5)
                return etag
            except TimeoutError:
                failure = TransientError("no progress within the per-request deadline")
            except UrlExpired as expired:
                job.sent -= sent[0]
                if renewed:
                    raise Restart(str(expired)) from None
                renewed = await self._renew(grant)
                continue
            except TransientError as transient:
                failure = transient
            except UploadGone as gone:
                raise Restart(str(gone)) from None
            job.sent -= sent[0]
            self._check_identity()
            await self._retry_pause(failure)

    async def _renew(self, grant: Grant) -> bool:
        if not await self.svc.renew(self.job, grant):
            raise Restart("the storage URLs expired and the backend cannot renew them")
        self.ctx.log("info", f"{self.job.display}: fresh storage URLs", self.job.id)
        return True

    def _range(
        self, start: int, length: int, watchdog: asyncio.Timeout, sent: list[int]
    ) -> AsyncIterator[bytes]:
        job, options, loop = self.job, self.options, self.loop

        async def gen() -> AsyncIterator[bytes]:
            pos, end = start, start + length
            while pos < end:
                n = min(PIECE, end - pos)
                rate = self.ctx.bandwidth.rate
                watchdog.reschedule(loop.time() + options.stall_timeout + (n / rate if rate else 0))
                await self.ctx.bandwidth.acquire(n)
                data = await loop.run_in_executor(io_executor(), read_piece, self.fd, pos, n, None)
                yield data
                pos += n
                sent[0] += n
                job.sent += n
                self.ctx.count_bytes(job, n)
            watchdog.reschedule(loop.time() + options.response_timeout)

        return gen()

    # -- parts in parallel ----------------------------------------------------------------------

    async def _multipart(self, grant: Grant) -> tuple[str, str, list[dict[str, Any]]]:
        job = self.job
        part_size = grant.part_size or 0
        count = max(1, -(-job.size // part_size))
        # The count first: a part size of 1 byte would make the list one entry per byte.
        if len(grant.parts) != count or sorted(grant.parts) != list(range(1, count + 1)):
            raise ProtocolError(f"multipart answer lists {len(grant.parts)} parts, not {count}")
        done = sum(
            min(part_size, job.size - (n - 1) * part_size) for n, p in grant.parts.items() if p.etag
        )
        if done:
            self.ctx.log(
                "info", f"{job.display}: resuming with {done} bytes of parts stored", job.id
            )
            job.resumed_from = done
        job.sent = done
        # The file's SHA1, xxh3 and MD5 in one sequential pass on a worker thread, while
        # each part hashes its own MD5 (for Content-MD5) just before it goes: parts start
        # at once and hash in parallel, instead of waiting for the pass to reach them.
        stop = threading.Event()
        hashing = self.loop.run_in_executor(
            io_executor(), hash_parts, self.fd, job.size, job.size, ignore_parts, stop
        )
        missing = [n for n in sorted(grant.parts) if grant.parts[n].etag is None]
        sending = asyncio.ensure_future(self._send_parts(grant, missing))
        try:
            # A failed pass (the file changed, a read error) ends the parts at once.
            both: list[asyncio.Future[Any]] = [sending, hashing]
            await asyncio.wait(both, return_when="FIRST_EXCEPTION")
            if hashing.done() and hashing.exception() is not None and not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
                await hashing  # raises the pass's error (FileChangedError, LocalFileError)
            await sending
            sha1, xxh, md5 = await hashing
        finally:
            stop.set()
            for pending in (sending, hashing):
                if not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
        if xxh != job.fingerprint:
            raise FileChangedError("changed during upload: content differs from the pre-scan")
        parts = [{"part_number": n, "etag": grant.parts[n].etag} for n in sorted(grant.parts)]
        return sha1, md5, parts

    async def _send_parts(self, grant: Grant, numbers: list[int]) -> None:
        """The job's own slot sends one part; more go as the concurrency gate has room."""
        queue = list(reversed(numbers))
        running: dict[asyncio.Task[None], bool] = {}  # task -> holds an extra gate slot
        own_busy = False
        try:
            while queue or running:
                while queue:
                    self._checkpoint()
                    if not own_busy:
                        own_busy, extra = True, False
                    elif self.ctx.gate.take(self.ctx.options.small_boost):
                        extra = True
                    else:
                        break
                    number = queue.pop()
                    task = asyncio.ensure_future(self._part(grant, number))
                    running[task] = extra
                finished, _ = await asyncio.wait(
                    running, timeout=PART_POLL if queue else None, return_when="FIRST_COMPLETED"
                )
                for task in finished:
                    if running.pop(task):
                        await self._release_slot()
                    else:
                        own_busy = False
                    task.result()
        finally:
            for task in running:
                task.cancel()
            for task, extra in running.items():
                await asyncio.gather(task, return_exceptions=True)
                if extra:
                    await self._release_slot()

    async def _release_slot(self) -> None:
        await self.ctx.gate.release(self.ctx.options.small_boost)
        self.ctx.kick()

    async def _part(self, grant: Grant, number: int) -> None:
        job = self.job
        part_size = grant.part_size or 0
        start = (number - 1) * part_size
        length = min(part_size, job.size - start)
        md5 = _b64(
            await self.loop.run_in_executor(io_executor(), md5_range, self.fd, start, length)
        )
        etag = await self._put(grant, number, start, length, md5)
        grant.parts[number].etag = etag
        self.svc.records.part_done(job.id, number, etag)
        self._progress_made()
