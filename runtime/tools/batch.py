"""``jubako batch submit|status|fetch|cancel``: batch jobs of an HTTP gateway.

Examples::

    jubako batch submit http://127.0.0.1:8080 classify --input in.jsonl --output out.jsonl --wait
    jubako batch status http://127.0.0.1:8080 JOB
    jubako batch fetch http://127.0.0.1:8080 JOB --output out.jsonl
    jubako batch cancel http://127.0.0.1:8080 JOB

``submit`` prints the job's id on stdout; with ``--wait`` it shows the progress on stderr
(a bar on a terminal, a line a second otherwise) and then writes the results (to
``--output``, or stdout). Exit status: 0 when the job completed (results may still hold
per-line errors, counted on stderr), 1 when it failed or was cancelled or the gateway
said no (its message is printed), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

FINAL = ("completed", "failed", "cancelled")


class BatchError(Exception):
    """What went wrong, said for a person; exit status 1."""


def add_parser(commands: Any) -> None:
    """Add ``batch`` to the ``jubako`` command's sub-commands."""
    batch = commands.add_parser(
        "batch",
        help="submit, watch, fetch and cancel batch jobs of an HTTP gateway",
        description="Batch jobs of a gateway generated with jenerator -l http. URL is the "
        "gateway's base URL, e.g. http://127.0.0.1:8080.",
    )
    actions = batch.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="upload JSON Lines as a job of METHOD")
    submit.add_argument("url")
    submit.add_argument("method")
    submit.add_argument("--input", "-i", required=True, type=Path, help="JSON Lines, one "
                        "object of arguments per line ('-' for stdin)")  # fmt: skip
    submit.add_argument("--output", "-o", type=Path, help="write the results here (with --wait)")
    submit.add_argument("--wait", action="store_true", help="wait for the job, then fetch it")
    submit.add_argument("--dedupe", action="store_true", help="compute identical inputs once")
    submit.add_argument("--keep-bad-lines", action="store_true",
                        help="store bad lines as per-line errors instead of refusing")  # fmt: skip
    submit.add_argument("--retry-interrupted", action="store_true",
                        help="send again inputs a gateway stop interrupted")  # fmt: skip
    submit.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    status = actions.add_parser("status", help="a job's state and progress")
    status.add_argument("url")
    status.add_argument("job")
    status.add_argument("--json", action="store_true", help="print the JSON the gateway gives")
    fetch = actions.add_parser("fetch", help="a job's results as JSON Lines")
    fetch.add_argument("url")
    fetch.add_argument("job")
    fetch.add_argument("--output", "-o", type=Path, help="file to write (default stdout)")
    fetch.add_argument("--offset", type=int, default=0, help="first input (0-based)")
    fetch.add_argument("--limit", type=int, default=None, help="inputs at most")
    cancel = actions.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("url")
    cancel.add_argument("job")
    cancel.add_argument("--purge", action="store_true", help="delete a finished job instead")
    for parser in (submit, status, fetch, cancel):
        parser.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout (s)")


def run(args: argparse.Namespace) -> int:
    """Run ``jubako batch ACTION``; the exit status."""
    import httpx

    try:
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as http:
            if args.action == "submit":
                return _submit(http, args)
            if args.action == "status":
                return _status(http, args)
            if args.action == "fetch":
                return _fetch(http, args.job, args.output, args.offset, args.limit)
            return _cancel(http, args)
    except BatchError as error:
        print(f"jubako: {error}", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"jubako: {args.url}: {error}", file=sys.stderr)
        return 1


def _checked(reply: httpx.Response, *ok: int) -> Any:
    if reply.status_code in (ok or (200,)):
        return reply.json()
    try:
        body = reply.json()
        text = f"{body.get('error', 'error')}: {body.get('message', reply.text)}"
    except ValueError:
        text = reply.text[:500]
    raise BatchError(f"{reply.request.method} {reply.request.url.path}: {reply.status_code} {text}")


def _submit(http: httpx.Client, args: argparse.Namespace) -> int:
    params = {
        "dedupe": str(args.dedupe).lower(),
        "bad_lines": "keep" if args.keep_bad_lines else "reject",
        "retry_interrupted": str(args.retry_interrupted).lower(),
    }
    headers = {"content-type": "application/x-ndjson"}
    with _opened(args.input) as source:
        chunks = iter(lambda: source.read(1 << 20), b"")  # streamed, whatever the source
        reply = http.post(f"/v1/jobs/{args.method}", content=chunks, params=params, headers=headers)
    job = _checked(reply, 202)
    print(job["job"], flush=True)
    if not args.quiet:
        extra = f", {job['duplicates']} duplicates" if job["duplicates"] else ""
        bad = f", {job['errors']} bad lines kept" if job["errors"] else ""
        print(f"job {job['job']}: {job['total']} inputs stored{extra}{bad}", file=sys.stderr)
    if not args.wait:
        return 0
    final = _watch(http, job["job"], quiet=args.quiet)
    if final["state"] != "completed":
        raise BatchError(f"job {job['job']} {final['state']}: {final['message']}")
    _fetch(http, job["job"], args.output, 0, None)
    if not args.quiet:
        where = f" in {args.output}" if args.output else ""
        print(f"job {job['job']}: completed, {final['total']} results{where}, "
              f"{final['errors']} errors", file=sys.stderr)  # fmt: skip
    return 0


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    try:
        with path.open("rb") as handle:
            yield handle
    except OSError as error:
        raise BatchError(f"cannot read {path}: {error.strerror}") from None


def _line(job: dict[str, Any]) -> str:
    total = job["total"] or 1
    eta = "" if job["eta"] is None else f", ETA {job['eta']:.0f} s"
    return (f"job {job['job']}: {job['state']} {job['done']}/{job['total']} "
            f"({100 * job['done'] / total:.0f}%), {job['errors']} errors, "
            f"{job['rate']:.0f}/s{eta}")  # fmt: skip


def _watch(http: httpx.Client, job_id: str, *, quiet: bool) -> dict[str, Any]:
    """Poll the job until it ends, showing its progress on stderr."""
    if quiet:
        return _poll(http, job_id, lambda job: None)
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
        )  # fmt: skip
        with Progress(*columns, console=Console(stderr=True), refresh_per_second=4) as bar:
            task = bar.add_task(f"job {job_id}", total=None, detail="")

            def show(job: dict[str, Any]) -> None:
                eta = "" if job["eta"] is None else f" ETA {job['eta']:.0f} s"
                detail = f"{job['state']} {job['errors']} errors {job['rate']:.0f}/s{eta}"
                bar.update(task, total=job["total"], completed=job["done"], detail=detail)

            return _poll(http, job_id, show)
    last = [0.0]

    def plain(job: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or job["state"] in FINAL:
            last[0] = now
            print(_line(job), file=sys.stderr, flush=True)

    return _poll(http, job_id, plain)


def _poll(http: httpx.Client, job_id: str, show: Any) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = _checked(http.get(f"/v1/jobs/{job_id}"))
        show(job)
        if job["state"] in FINAL:
            return job
        time.sleep(0.25)


def _status(http: httpx.Client, args: argparse.Namespace) -> int:
    job = _checked(http.get(f"/v1/jobs/{args.job}"))
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(_line(job) + (f" ({job['message']})" if job["message"] else ""))
    return 0


def _fetch(
    http: httpx.Client, job_id: str, output: Path | None, offset: int, limit: int | None
) -> int:
    params: dict[str, int] = {"offset": offset}
    if limit is not None:
        params["limit"] = limit
    with http.stream("GET", f"/v1/jobs/{job_id}/results", params=params) as reply:
        if reply.status_code != 200:
            reply.read()
            _checked(reply)
        target = output.open("wb") if output is not None else sys.stdout.buffer
        try:
            for chunk in reply.iter_bytes():
                target.write(chunk)
        finally:
            if output is not None:
                target.close()
            else:
                target.flush()
    return 0


def _cancel(http: httpx.Client, args: argparse.Namespace) -> int:
    params = {"purge": "true"} if args.purge else {}
    job = _checked(http.delete(f"/v1/jobs/{args.job}", params=params))
    print(f"job {args.job}: deleted" if args.purge else _line(job))
    return 0
