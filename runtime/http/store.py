"""The job store: SQLite in WAL mode, one file under ``--datadir``, safe against kill -9.

Two tables. ``jobs`` holds one row per job (state, counters, options, times). ``items``
holds one row per input, keyed ``seq << 32 | n`` (the job's sequence number and the
input's index), so a job's inputs are one range of one B-tree:

- ``params``: the wire arguments, packed as :mod:`runtime.http.params` says (NULL for a
  bad line kept as an error, and for a duplicate, which points at its first occurrence
  with ``dup_of``);
- ``sent``: set, and committed, before the input goes to the upstream;
- ``ok`` / ``body``: NULL until the result (``ok`` 1, ``body`` its JSON) or the error
  (``ok`` 0, ``body`` an error object) is stored.

Every method here is synchronous and commits before it returns; a connection per thread
(callers run them in threads, never on the event loop). A second gateway on the same
file is refused: a lock file next to it is held for the store's lifetime.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHIFT = 32
#: States of a job; the last three are final.
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued", "running", "completed", "failed", "cancelled",
)  # fmt: skip
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY,
    line INTEGER NOT NULL,
    params BLOB,
    dup_of INTEGER,
    sent INTEGER NOT NULL DEFAULT 0,
    ok INTEGER,
    body TEXT
);
"""


class StoreError(Exception):
    """The store cannot be opened (locked by another gateway, unwritable, not SQLite)."""


@dataclass
class Job:
    """A job's row."""

    seq: int
    id: str
    method: str
    state: str
    total: int
    done: int = 0
    errors: int = 0
    duplicates: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    message: str = ""

    @property
    def first(self) -> int:
        """The key of the first input."""
        return self.seq << SHIFT

    @property
    def last(self) -> int:
        """The key of the last input."""
        return (self.seq << SHIFT) + self.total - 1


@dataclass(frozen=True)
class NewItem:
    """An input to store: its line, and either wire params, a first occurrence, or an error."""

    line: int
    params: bytes | None = None
    dup_of: int | None = None
    error: str | None = None


_JOB_COLUMNS = (
    "seq, id, method, state, total, done, errors, duplicates, options, created, started, "
    "finished, message"
)


def _identity(path: Path) -> tuple[int, int]:
    """Which file ``path`` names: its device and inode."""
    found = os.stat(path)
    return found.st_dev, found.st_ino


def _job(row: Sequence[Any]) -> Job:
    values = list(row)
    values[8] = json.loads(values[8])
    return Job(*values)


class Store:
    """The job store in ``path``; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot create the job store in {path.parent}: {error}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_file)
            raise StoreError(
                f"another gateway uses the job store {path}; give each gateway its own --datadir"
            ) from None
        try:
            self.conn().executescript(_SCHEMA)
            self._identity = _identity(path)
        except (sqlite3.DatabaseError, OSError) as error:
            self.close()
            raise StoreError(f"cannot use the job store {path}: {error}") from None

    def check_file(self) -> None:
        """StoreError when the store's file was removed or replaced since it was opened:
        what is written now would go to a file nobody can open again."""
        try:
            same = _identity(self.path) == self._identity
        except OSError:
            same = False
        if not same:
            raise StoreError(
                f"the job store {self.path} was removed or replaced while the gateway ran; "
                "restart the gateway (jobs stored since are lost with the old file)"
            )

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        if self._lock_file >= 0:
            os.close(self._lock_file)
            self._lock_file = -1

    # -- jobs ----------------------------------------------------------------------------

    def create(
        self, job_id: str, method: str, items: Sequence[NewItem], options: dict[str, Any]
    ) -> Job:
        """Store a new queued job and all its inputs in one transaction, synced to disk;
        StoreError when the store's file is gone (see :meth:`check_file`)."""
        self.check_file()
        conn = self.conn()
        errors = sum(item.error is not None for item in items)
        duplicates = sum(item.dup_of is not None for item in items)
        now = time.time()
        conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            # A number is never given twice, even after its job was deleted: the late
            # replies of a cancelled run must find no other job's inputs under it.
            conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0)")
            seq = conn.execute(
                "UPDATE counters SET value = max(value, "
                "(SELECT coalesce(max(seq), 0) FROM jobs)) + 1 WHERE name = 'seq' RETURNING value"
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO jobs (seq, id, method, state, total, done, errors, duplicates, "
                "options, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, job_id, method, QUEUED, len(items), errors, errors, duplicates,
                 json.dumps(options), now),
            )  # fmt: skip
            base = seq << SHIFT
            conn.executemany(
                "INSERT INTO items (key, line, params, dup_of, ok, body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        base + n, item.line, item.params,
                        None if item.dup_of is None else base + item.dup_of,
                        None if item.error is None else 0, item.error,
                    )
                    for n, item in enumerate(items)
                ),
            )  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("PRAGMA synchronous=NORMAL")
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        row = self.conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        found = row.fetchone()
        return None if found is None else _job(found)

    def jobs(self, states: Iterable[str] | None = None, limit: int = 1000) -> list[Job]:
        """Jobs, newest first (``states``: only those)."""
        query = f"SELECT {_JOB_COLUMNS} FROM jobs"
        args: list[Any] = []
        if states is not None:
            wanted = list(states)
            query += f" WHERE state IN ({', '.join('?' * len(wanted))})"
            args += wanted
        query += " ORDER BY seq DESC LIMIT ?"
        return [_job(row) for row in self.conn().execute(query, [*args, limit])]

    def set_state(self, job: Job, state: str, message: str | None = None) -> None:
        """Move ``job`` to ``state`` (stamping start or finish time); updates ``job``."""
        now = time.time()
        if state == RUNNING and job.started is None:
            job.started = now
        if state in FINAL:
            job.finished = now
        job.state = state
        if message is not None:
            job.message = message
        self.conn().execute(
            "UPDATE jobs SET state = ?, started = ?, finished = ?, message = ? WHERE seq = ?",
            (state, job.started, job.finished, job.message, job.seq),
        )

    def set_message(self, job: Job, message: str) -> None:
        job.message = message
        self.conn().execute("UPDATE jobs SET message = ? WHERE seq = ?", (message, job.seq))

    def delete(self, job: Job) -> None:
        """Remove ``job`` and its inputs and results."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "DELETE FROM items WHERE key BETWEEN ? AND ?", (job.first, job.first + (1 << SHIFT) - 1)
        )
        conn.execute("DELETE FROM jobs WHERE seq = ?", (job.seq,))
        conn.execute("COMMIT")

    def expired(self, ttl: float, now: float | None = None) -> list[Job]:
        """Finished jobs whose finish is more than ``ttl`` seconds ago."""
        limit = (time.time() if now is None else now) - ttl
        rows = self.conn().execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN (?, ?, ?) AND finished < ?",
            (*sorted(FINAL), limit),
        )
        return [_job(row) for row in rows]

    # -- the runner ----------------------------------------------------------------------

    def interrupted(self, job: Job) -> list[int]:
        """Keys of inputs sent before a stop whose result was never stored."""
        rows = self.conn().execute(
            "SELECT key FROM items WHERE key BETWEEN ? AND ? AND sent = 1 AND ok IS NULL "
            "AND dup_of IS NULL", (job.first, job.last),
        )  # fmt: skip
        return [key for (key,) in rows]

    def unsend(self, keys: Sequence[int]) -> None:
        """Mark inputs as not sent (they will be sent again)."""
        self.conn().executemany("UPDATE items SET sent = 0 WHERE key = ?", ((k,) for k in keys))

    def duplicates(self, job: Job) -> dict[int, list[int]]:
        """First occurrence → the keys of its duplicates still without a result."""
        rows = self.conn().execute(
            "SELECT key, dup_of FROM items WHERE key BETWEEN ? AND ? AND dup_of IS NOT NULL "
            "AND ok IS NULL", (job.first, job.last),
        )  # fmt: skip
        out: dict[int, list[int]] = {}
        for key, first in rows:
            out.setdefault(first, []).append(key)
        return out

    def take(self, job: Job, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` unsent inputs with keys above ``after`` (not marked: the sender
        marks each group just before it goes, :meth:`mark_sent`)."""
        rows: list[tuple[int, bytes]] = (
            self.conn()
            .execute(
                "SELECT key, params FROM items WHERE key > ? AND key <= ? AND sent = 0 "
                "AND ok IS NULL AND dup_of IS NULL ORDER BY key LIMIT ?",
                (after, job.last, limit),
            )
            .fetchall()
        )
        return rows

    def mark_sent(self, first: int, last: int) -> None:
        """Mark the unsent inputs with keys ``first .. last`` sent, committed, before they
        leave: after a kill, an input marked sent and without a result may have been
        applied."""
        self.conn().execute(
            "UPDATE items SET sent = 1 WHERE key BETWEEN ? AND ? AND sent = 0 "
            "AND ok IS NULL AND dup_of IS NULL", (first, last),
        )  # fmt: skip

    def finish_items(
        self, job: Job, rows: Sequence[tuple[int, int, str]], dups: dict[int, list[int]]
    ) -> tuple[int, int]:
        """Store results ``(key, ok, body)`` (and copy them to their duplicates); the
        job's counters move in the same transaction. Returns the job's (done, errors)."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            copies = [(k2, ok, body) for key, ok, body in rows for k2 in dups.pop(key, ())]
            every = [*rows, *copies]
            conn.executemany(
                "UPDATE items SET ok = ?, body = ? WHERE key = ? AND ok IS NULL",
                ((ok, body, key) for key, ok, body in every),
            )
            failed = sum(1 for _, ok, _ in every if not ok)
            counted = conn.execute(
                "UPDATE jobs SET done = done + ?, errors = errors + ? WHERE seq = ? AND id = ? "
                "RETURNING done, errors", (len(every), failed, job.seq, job.id),
            ).fetchone()  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if counted is None:  # the job was deleted meanwhile: its results go with it
            return job.done, job.errors
        job.done, job.errors = counted
        return job.done, job.errors

    def remaining(self, job: Job) -> int:
        """Inputs without a result."""
        row = (
            self.conn()
            .execute(
                "SELECT count(*) FROM items WHERE key BETWEEN ? AND ? AND ok IS NULL",
                (job.first, job.last),
            )
            .fetchone()
        )
        return int(row[0])

    # -- results -------------------------------------------------------------------------

    def results(
        self, job: Job, offset: int, limit: int
    ) -> list[tuple[int, int, int | None, str | None]]:
        """``(n, line, ok, body)`` of inputs ``offset ..`` in order, at most ``limit``."""
        if offset >= job.total or limit <= 0:
            return []
        start = job.first + offset
        end = min(job.last, start + limit - 1)
        rows = self.conn().execute(
            "SELECT key, line, ok, body FROM items WHERE key BETWEEN ? AND ? ORDER BY key",
            (start, end),
        )
        return [(key - job.first, line, ok, body) for key, line, ok, body in rows]
