"""The backend side of presigned uploads: storage discovery, batched URL requests, batched
confirms and URL renewal, shared by every job of one UploadManager.

URL requests: the first job to need a URL asks for itself and the next queued small files
(up to 200 in one `presigned_upload/upload/`), journals every grant in one write, and the
others find theirs when they start. Confirms are sent when 200 are pending, when no
other file is running or ready to start, or after `CONFIRM_LINGER`: one request for many.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from synapse_tui.engine.errors import (
    ConfigError,
    FileError,
    ProtocolError,
    ServerRejected,
    TransientError,
    UploadGone,
)
from synapse_tui.engine.events import JobState
from synapse_tui.engine.names import escape_text
from synapse_tui.engine.presigned_journal import Grant, Part, PresignedJournal
from synapse_tui.engine.storage_http import StorageClient, origin_of, show

if TYPE_CHECKING:
    from synapse_tui.engine.job import Job
    from synapse_tui.engine.scheduler import UploadManager

# Storage providers whose presigned PUTs the SDK sends (its PRESIGNED_UPLOAD_PROVIDERS).
PROVIDERS = frozenset({"amazon_s3", "s3", "minio", "gcp", "gcs", "azure"})
BATCH = 200  # files per upload/ and confirm_upload/ request (the SDK's batch size)
EXPIRATION = 3600  # seconds the URLs asked for stay valid
EXPIRY_MARGIN = 120.0  # a URL this close to expiry is renewed before use
FOLLOWER_MAX = 100 << 20  # only files this small ride along in another file's request
LOOKAHEAD = 2 * BATCH  # job ids after the asker searched for followers
CONFIRM_LINGER = 0.25  # seconds a confirm waits for company when some jobs are still sending
UPLOAD_PATH = "data_files/presigned_upload/upload/"
CONFIRM_PATH = "data_files/presigned_upload/confirm_upload/"
PARTS_PATH = "data_files/presigned_upload/parts/"


def _retrieved(task: asyncio.Task[Any]) -> None:
    """An early ask's failure is `discover`'s to handle (it asks again), not the loop's."""
    if not task.cancelled():
        task.exception()


def _epoch(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + EXPIRATION / 2


class PresignedService:
    """One per UploadManager (see `presigned.service`)."""

    def __init__(self, manager: UploadManager) -> None:
        self.m = manager
        self.records = PresignedJournal(manager.journal)
        # Requests to the storage share the API client's pool (closed with it); they carry
        # no credentials (StorageClient adds none) and only go to the announced origin.
        self.storage = StorageClient(transport=getattr(manager.client, "_transport", None))
        self.storage.barrier = manager.journal.durable  # as the API client's (protocol.py)
        self.capable: bool | None = None
        self.why_not = ""
        self._discovering = asyncio.Lock()
        self._early: asyncio.Task[tuple[bool, str]] | None = None  # see `ask_early`
        self.grants: dict[int, Grant] = {}
        self._asked: dict[int, asyncio.Future[Grant]] = {}
        self._wanting: list[Job] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.running = 0  # jobs inside the presigned path now

    # -- which path -----------------------------------------------------------------------------

    def ask_early(self) -> None:
        """Ask for the storage now, while the first files are scanned: otherwise the first
        file waits for that round trip. `discover` takes the answer (and says it, in the
        job's context as before); a failed early ask is asked again there."""
        if self.capable is None and self._early is None and self.m.options.strategy != "chunked":
            self._early = asyncio.create_task(self._ask_storage(), name="storage-discovery")
            self._early.add_done_callback(_retrieved)

    async def end_early(self) -> None:
        """The manager closes: an unanswered early ask goes with it (else it outlives the
        manager, holding its connection until the read timeout)."""
        early, self._early = self._early, None
        if early is not None and not early.done():
            early.cancel()
            await asyncio.wait([early])  # never raises: `_retrieved` reads its outcome

    async def discover(self) -> bool:
        """Whether the backend's default internal storage takes presigned uploads (asked once)."""
        async with self._discovering:
            if self.capable is None:
                early = self._early
                if early is not None:  # left in place while waited for: `end_early` ends it
                    await asyncio.wait([early])  # never raises: its outcome is read below
                    self._early = None
                if early is not None and not early.cancelled() and early.exception() is None:
                    self.capable, self.why_not = early.result()
                else:
                    self.capable, self.why_not = await self._ask_storage()
                level = "info" if self.capable else "warning"
                if self.capable or self.m.options.strategy == "presigned":
                    self.m.log(level, f"presigned uploads: {self.why_not}")
            return self.capable

    async def _ask_storage(self) -> tuple[bool, str]:
        try:
            data = await self.m.client.get_json("storages/", {"category": "internal"})
        except (UploadGone, FileError) as exc:
            return False, f"the backend lists no storages ({exc}); using chunked uploads"
        results = data.get("results", []) if isinstance(data, dict) else data
        storages = [s for s in results or [] if isinstance(s, dict)]
        if not storages:
            return False, "the backend has no internal storage; using chunked uploads"
        storage = next((s for s in storages if s.get("is_default")), storages[0])
        provider = escape_text(str(storage.get("provider", "")).lower())[:64]  # server text
        if provider not in PROVIDERS:
            return False, f"the storage is {provider or 'unnamed'}, not presigned; using chunked"
        config = storage.get("configuration") or {}
        endpoint = config.get("endpoint_url") if isinstance(config, dict) else None
        if not isinstance(endpoint, str) or not endpoint:
            return False, "the storage announces no endpoint to check URLs against; using chunked"
        self.storage.allow(endpoint, str(config.get("bucket_name") or "") or None)
        return True, f"straight to the {provider} storage at {show(origin_of(endpoint))}"

    def strategy_refused(self) -> None:
        if self.m.options.strategy == "presigned" and self.capable is False:
            raise ConfigError(f"--strategy presigned: {self.why_not}")

    # -- grants ---------------------------------------------------------------------------------

    async def known(self, job: Job) -> Grant | None:
        grant = self.grants.get(job.id)
        if grant is None:
            grant = await self.records.load(job.id)
            if grant is not None:
                self.grants[job.id] = grant
        return grant

    def has_grant(self, job: Job) -> bool:
        """Whether `job` has a grant, in memory or journaled (no read: `known` reads it)."""
        return job.id in self.grants or self.records.has(job.id)

    def drop(self, job: Job, *, lazy: bool = False) -> None:
        self.grants.pop(job.id, None)
        self.records.forget(job.id, lazy=lazy)

    async def grant(self, job: Job) -> Grant:
        """This job's URLs: journaled, asked already (with another file), or asked now,
        along with every job that asks in the same turn of the loop and the next queued
        small files."""
        grant = await self.known(job)
        if grant is not None:
            return grant
        asked = self._asked.get(job.id)
        if asked is None:
            asked = self._asked[job.id] = asyncio.get_running_loop().create_future()
            self._wanting.append(job)
            if len(self._wanting) == 1:
                asyncio.get_running_loop().call_soon(self._start_request)
        return await asyncio.shield(asked)

    def _start_request(self) -> None:
        wanting, self._wanting = self._wanting[:BATCH], self._wanting[BATCH:]
        if self._wanting:
            asyncio.get_running_loop().call_soon(self._start_request)
        if not wanting:
            return
        room = BATCH - len(wanting)
        followers = self._followers(min(wanting, key=lambda j: j.id), room) if room else []
        task = asyncio.get_running_loop().create_task(self._request(wanting + followers))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _followers(self, job: Job, room: int) -> list[Job]:
        m = self.m
        found: list[Job] = []
        for job_id in range(job.id + 1, job.id + LOOKAHEAD):
            other = m.jobs.get(job_id)
            if (
                other is not None
                and other.state == JobState.QUEUED  # started or not: it has not asked yet
                and other.size <= FOLLOWER_MAX
                and other.upload_url is None
                and not other.steps.uploaded
                and job_id not in self.grants
                and job_id not in self._asked
                and not m.driven_elsewhere(job_id)
            ):
                found.append(other)
                if len(found) == room:
                    break
        return found

    async def _request(self, jobs: list[Job]) -> None:
        """One upload/ request for `jobs`; each waiter gets its grant or the error."""
        loop = asyncio.get_running_loop()
        futures = {j.id: self._asked.get(j.id) or loop.create_future() for j in jobs}
        self._asked.update(futures)
        body = {
            "files": [{"filename": j.name, "size": j.size, "content_type": None} for j in jobs],
            "expiration": EXPIRATION,
        }
        try:
            answer = await self._retrying(
                jobs[0], lambda: self.m.client.post_json(UPLOAD_PATH, body)
            )
            grants = self._parse_grants(answer, len(jobs))
            self.records.save({j.id: g for j, g in zip(jobs, grants, strict=True)})
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else TransientError("request cancelled")
            for job_id, future in futures.items():
                self._asked.pop(job_id, None)
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: a follower nobody waits for yet
            if not isinstance(exc, Exception):
                raise
            return
        for job, grant in zip(jobs, grants, strict=True):
            self.grants[job.id] = grant
            self._asked.pop(job.id, None)
            if not futures[job.id].done():
                futures[job.id].set_result(grant)

    def _parse_grants(self, answer: Any, count: int) -> list[Grant]:
        files = answer.get("files") if isinstance(answer, dict) else None
        if not isinstance(files, list) or len(files) != count:
            raise ProtocolError("presigned answer does not list one entry per file")
        expires = _epoch(answer.get("expires_at"))
        return [self._parse_one(f, expires) for f in files]

    def _parse_one(self, entry: Any, expires: float) -> Grant:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_key"), str):
            raise ProtocolError("presigned answer lacks a file key")
        grant = Grant(entry["file_key"], expires)
        self._fill(grant, entry)
        if grant.url is None and grant.upload_id is None:
            raise ProtocolError("presigned answer has neither a URL nor a multipart upload")
        return grant

    def _fill(self, grant: Grant, entry: dict[str, Any]) -> None:
        """Take the URL or the parts of an answer into `grant`, each origin-checked."""
        url, multipart = entry.get("presigned_url"), entry.get("multipart")
        if isinstance(url, str) and url:
            self.storage.check(url)
            grant.url = url
        elif isinstance(multipart, dict):
            try:
                grant.upload_id = str(multipart["upload_id"])
                grant.part_size = int(multipart["part_size"])
                parts = {int(p["part_number"]): str(p["presigned_url"]) for p in multipart["parts"]}
            except (KeyError, TypeError, ValueError):
                raise ProtocolError("presigned multipart answer is malformed") from None
            if grant.part_size < 1:
                raise ProtocolError("presigned multipart answer has no part size")
            for number, part_url in parts.items():
                self.storage.check(part_url)
                old = grant.parts.get(number)
                grant.parts[number] = Part(part_url, old.etag if old else None)

    async def renew(self, job: Job, grant: Grant) -> bool:
        """Fresh URLs for the same key (the parts without an ETag); False if the backend
        cannot give them (the Synapse API has no such call: the file starts again)."""
        missing = [n for n, p in grant.parts.items() if p.etag is None]
        body: dict[str, Any] = {"file_key": grant.file_key, "expiration": EXPIRATION}
        if grant.multipart:
            body["part_numbers"] = missing
        try:
            answer = await self._retrying(job, lambda: self.m.client.post_json(PARTS_PATH, body))
        except (UploadGone, ServerRejected):
            return False
        if not isinstance(answer, dict):
            raise ProtocolError("renewed URLs answer is not an object")
        self._fill(grant, answer)
        grant.expires_at = _epoch(answer.get("expires_at"))
        self.records.renewed(job.id, grant)
        return True

    # -- confirms -------------------------------------------------------------------------------

    @property
    def waiting(self) -> list[Any]:
        """The confirms not sent yet."""
        return self._pending

    async def confirm(self, item: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= BATCH or not self._more_coming():
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(CONFIRM_LINGER, self._flush)
        return await future

    def _more_coming(self) -> bool:
        """Whether another file may join soon: one running and not yet confirming, or one
        ready to start (the dispatcher's heap; a stale entry only costs the linger)."""
        if self.running > len(self._pending):
            return True
        return not self.m.draining and bool(self.m.queue.ready)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            asyncio.get_running_loop().create_task(self._send_confirms(batch))

    async def _send_confirms(
        self, batch: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]]
    ) -> None:
        body = {"files": [item for item, _ in batch]}
        total = sum(int(item.get("size", 0)) for item, _ in batch)
        try:
            # The same file keys confirmed again answer the same data files: a lost answer
            # is simply asked again.
            answer = await self._retrying(
                None,
                lambda: self.m.client.post_json(
                    CONFIRM_PATH, body, timeout=self.m.client.timeouts.finalize(total)
                ),
            )
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list):
                raise ProtocolError("confirm answer lacks results")
            by_key = {r.get("file_key"): r for r in results if isinstance(r, dict)}
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for item, future in batch:
            if future.done():
                continue
            found = by_key.get(item["file_key"])
            if found is None:
                future.set_exception(ProtocolError("confirm answer lacks this file"))
            else:
                future.set_result(found)

    async def _retrying(self, job: Job | None, op: Any) -> Any:
        """A backend request, retried on transient failures within the retry budget."""
        attempts = 0
        while True:
            wait = self.m.backoff.shared_wait()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await op()
            except TransientError as exc:
                attempts += 1
                if attempts > self.m.options.retries:
                    raise
                delay = self.m.backoff.delay(attempts, exc.retry_after)
                where = f"{job.display}: " if job is not None else ""
                self.m.log(
                    "warning", f"{where}{exc}; retry in {delay:.1f}s", job.id if job else None
                )
                await asyncio.sleep(delay)
