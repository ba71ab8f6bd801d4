"""The batch routes: submit (``POST /v1/jobs/{method}``), list, status, results, cancel.

An upload is JSON Lines, one object of arguments per line, sent as the body or as a
multipart file; ``202 {"job": ID}`` comes back only once every input is stored. Results
stream as JSON Lines in input order, ``{"line": N, "result": ...}`` or ``{"line": N,
"error": {...}}`` (``N`` is the upload's line number), from ``offset`` (inputs, not lines)
for at most ``limit`` inputs; while the job runs, the stream stops at the first input
without a result.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from runtime.http.errors import GatewayError, json_response
from runtime.http.gateway import Gateway, gateway_of
from runtime.http.jsontext import dumps
from runtime.http.limits import limited
from runtime.http.store import FINAL, QUEUED, RUNNING, Job, StoreError
from runtime.http.submit import parse

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

#: Results read from the store per step of a stream.
PAGE = 2000
_SPOOL = 16 << 20


#: Fields besides the file a multipart upload may have (each kept in memory, up to 1 MiB).
_FORM_FIELDS = 8


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, "too_large", f"the upload is over {limit} bytes (--max-upload)")


def _limited(request: Request, limit: int) -> Request:
    """``request`` whose body raises a 413 once more than ``limit`` bytes have come (a
    multipart form is parsed as it arrives: its files would be spooled to disk whole),
    or at once when it says it is longer."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    return Request(request.scope, limited(request.receive, limit, lambda: _too_large(limit)))


def job_json(gateway: Gateway, job: Job) -> dict[str, Any]:
    """What ``GET /v1/jobs/{id}`` says about ``job``."""
    return {
        "job": job.id, "method": job.method, "state": job.state, "total": job.total,
        **gateway.jobs.progress(job),
        "duplicates": job.duplicates, "message": job.message, "options": job.options,
        "created": job.created, "started": job.started, "finished": job.finished,
    }  # fmt: skip


async def _job(gateway: Gateway, job_id: str) -> Job:
    job = await asyncio.to_thread(gateway.store.get, job_id)
    if job is None:
        ttl = gateway.settings.jobs.ttl
        raise GatewayError(
            404, "not_found",
            f"no job {job_id!r}: finished jobs are deleted {ttl:g} s after they end (--job-ttl)",
        )  # fmt: skip
    return job


async def _upload(request: Request, limit: int) -> IO[bytes]:
    """The upload as a file: the multipart form's one file, or the body itself; either
    refused (413) as soon as it has sent more than ``limit`` bytes."""
    request = _limited(request, limit)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=_FORM_FIELDS)
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise GatewayError(422, "bad_input", "the form has no file: send it as field 'file'")
        return files[0].file
    spool = tempfile.SpooledTemporaryFile(_SPOOL)
    try:
        async for part in request.stream():
            spool.write(part)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@router.post("/v1/jobs/{method}", status_code=202, operation_id="submit_job")
async def submit(
    method: str,
    request: Request,
    dedupe: bool = Query(False, description="compute identical inputs once (#@analysis only)"),
    bad_lines: Literal["reject", "keep"] = Query(
        "reject", description="reject: refuse the upload; keep: store them as errors"
    ),
    retry_interrupted: bool = Query(
        False, description="send again inputs a stop interrupted (only if twice is harmless)"
    ),
) -> Response:
    """Submit a batch job: a JSON Lines body (or a multipart file), one object of
    arguments per line. Answers 202 once every input is stored."""
    gateway = await gateway_of(request)
    spec = gateway.service.method(method)
    if spec is None:
        names = ", ".join(m.name for m in gateway.service.methods)
        raise GatewayError(
            404, "not_found", f"no method {method!r} to run as a job; the methods are {names}"
        )
    if dedupe and not spec.reads_only:
        raise GatewayError(
            422, "bad_request",
            f"dedupe=true is only for #@analysis methods; {method} is #@{spec.lock} and may "
            "change the model, so every input must be sent",
        )  # fmt: skip
    upload = await _upload(request, gateway.settings.max_upload)
    options = {"dedupe": dedupe, "bad_lines": bad_lines, "retry_interrupted": retry_interrupted}
    job_id = secrets.token_hex(6)

    def store() -> Job:
        with upload:
            parsed = parse(spec, upload, keep_bad=bad_lines == "keep", dedupe=dedupe)
        return gateway.store.create(job_id, method, parsed.items, options)

    try:
        job = await asyncio.to_thread(store)
    except StoreError as error:
        log.error("%s", error)
        raise GatewayError(503, "store_unavailable", str(error)) from None
    gateway.jobs.wake()
    base = str(request.url_for("job_status", job_id=job.id))
    body = {**job_json(gateway, job), "status_url": base, "results_url": f"{base}/results"}
    return json_response(body, 202, {"Location": base})


@router.get("/v1/jobs", operation_id="list_jobs")
async def list_jobs(request: Request, limit: int = Query(100, ge=1, le=10000)) -> Response:
    """Jobs, newest first."""
    gateway = await gateway_of(request)
    jobs = await asyncio.to_thread(gateway.store.jobs, None, limit)
    return json_response({"jobs": [job_json(gateway, job) for job in jobs]})


@router.get("/v1/jobs/{job_id}", operation_id="job_status", name="job_status")
async def status(job_id: str, request: Request) -> Response:
    """A job's state (queued, running, completed, failed, cancelled), done/total, errors,
    rate (inputs/s) and ETA (s)."""
    gateway = await gateway_of(request)
    return json_response(job_json(gateway, await _job(gateway, job_id)))


@router.get("/v1/jobs/{job_id}/results", operation_id="job_results")
async def results(
    job_id: str,
    request: Request,
    offset: int = Query(0, ge=0, description="first input (0-based)"),
    limit: int | None = Query(None, ge=1, description="inputs at most"),
) -> StreamingResponse:
    """The results as JSON Lines in input order (see the module docstring)."""
    gateway = await gateway_of(request)
    job = await _job(gateway, job_id)
    end = job.total if limit is None else min(job.total, offset + limit)
    final = job.state in FINAL
    why = {"cancelled": "the job was cancelled before this input ran",
           "failed": f"the job failed before this input ran: {job.message}"}  # fmt: skip
    missing = dumps({"status": 410, "code": "not_run", "message": why.get(job.state, "")})

    async def lines() -> AsyncIterator[bytes]:
        at = offset
        while at < end:
            rows = await asyncio.to_thread(gateway.store.results, job, at, min(PAGE, end - at))
            if not rows:
                return
            out: list[str] = []
            for _, line, ok, body in rows:
                if ok is None:
                    if not final:
                        if out:
                            yield "".join(out).encode()
                        return
                    out.append(f'{{"line":{line},"error":{missing}}}\n')
                elif ok:
                    out.append(f'{{"line":{line},"result":{body}}}\n')
                else:
                    out.append(f'{{"line":{line},"error":{body}}}\n')
            yield "".join(out).encode()
            at += len(rows)

    headers = {"X-Job-State": job.state, "X-Job-Total": str(job.total)}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)


@router.delete("/v1/jobs/{job_id}", operation_id="cancel_job")
async def cancel(
    job_id: str,
    request: Request,
    purge: bool = Query(False, description="delete a finished job and its results now"),
) -> Response:
    """Cancel a queued or running job (results stored so far are kept); with
    ``purge=true``, delete a finished job."""
    gateway = await gateway_of(request)
    job = await _job(gateway, job_id)
    if purge:
        if job.state not in FINAL:
            raise GatewayError(409, "conflict", f"job {job_id} is {job.state}: cancel it first")
        await asyncio.to_thread(gateway.store.delete, job)
        return json_response({"job": job_id, "deleted": True})
    if job.state not in (QUEUED, RUNNING):
        raise GatewayError(
            409, "conflict",
            f"job {job_id} is {job.state} already; DELETE with ?purge=true deletes it",
        )  # fmt: skip
    job = await gateway.jobs.cancel(job)
    return json_response(job_json(gateway, job))
