"""SQLite result store: generations and verdicts keyed by content, shared safely by processes.

Keys hash what determines a result (model fingerprint, rendered prompt, decoding config; judge id,
prompt, response), never names, so a re-trained checkpoint at the same path gets fresh results.
The file uses WAL and ``BEGIN IMMEDIATE`` writes so that several pytest-xdist workers can read
and write one store at once: writers queue on the busy timeout instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from finetune_safety.config.project import prepare_cache_dir
from finetune_safety.errors import StoreError
from finetune_safety.values import Label, Verdict, with_details

STORE_FILENAME = "results.sqlite"
#: Bump when the table layout changes; an old file then fails loudly instead of misreading.
#: Version 2 added ``verdicts.details`` (a classifier's probability, categories, refusal).
SCHEMA_VERSION = 2
#: Versions this code migrates to ``SCHEMA_VERSION`` when it opens them for writing, and reads
#: as they are when it may not write.
_MIGRATES = {"1": ("ALTER TABLE verdicts ADD COLUMN details TEXT NULL",)}
#: Version of the key scheme; part of every hashed payload so a change invalidates all keys.
KEY_VERSION = 1
#: Keys per ``IN (...)`` query; well under SQLite's default limit of 999 (older builds).
_CHUNK = 500
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
    " prompt_id TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS generations_fingerprint ON generations (fingerprint)",
    "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge_id TEXT NOT NULL,"
    " score INTEGER NULL, label TEXT NOT NULL, rationale TEXT NOT NULL, created REAL NOT NULL,"
    " details TEXT NULL)",
    # The last error per verdict key, to read why a judgment failed; never read as a verdict.
    "CREATE TABLE IF NOT EXISTS judge_errors (key TEXT PRIMARY KEY, judge_id TEXT NOT NULL,"
    " reason TEXT NOT NULL, raw TEXT NOT NULL, created REAL NOT NULL)",
)


def _digest(payload: Mapping[str, object]) -> str:
    """sha256 of canonical JSON, so equal content gives equal keys in every process and OS."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generation_key(fingerprint: str, rendered: object, decoding: Mapping[str, object]) -> str:
    """Key of one model response; ``rendered`` and ``decoding`` must be JSON-able.

    Note ``1`` and ``1.0`` serialize differently: callers should normalize decoding values.
    """
    return _digest(
        {
            "v": KEY_VERSION,
            "kind": "generation",
            "fingerprint": fingerprint,
            "rendered": rendered,
            "decoding": dict(decoding),
        }
    )


def verdict_key(judge_id: str, prompt: str, response: str) -> str:
    """Key of one judgment; ``judge_id`` must include the rubric version."""
    return _digest(
        {
            "v": KEY_VERSION,
            "kind": "verdict",
            "judge": judge_id,
            "prompt": prompt,
            "response": response,
        }
    )


@dataclass(frozen=True)
class Generation:
    """One cached model response."""

    key: str
    fingerprint: str
    prompt_id: str
    response: str


def _chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


class Store:
    """One process's connection to the shared results file; open one per process, never fork it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        prepare_cache_dir(self.path.parent)
        #: A results file we may not write is still read: a fully cached run needs no writes.
        self.read_only = self.path.is_file() and not os.access(self.path, os.W_OK)
        target = f"{self.path.resolve().as_uri()}?mode=ro" if self.read_only else str(self.path)
        try:
            self._conn = sqlite3.connect(
                target, timeout=_BUSY_TIMEOUT_S, isolation_level=None, uri=self.read_only
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open result store: {exc}", self.path) from exc
        try:
            self._init_schema()
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._conn.close()
            if isinstance(exc, StoreError):
                raise
            raise self._failure(exc) from None

    def _failure(self, exc: sqlite3.DatabaseError) -> StoreError:
        """One line for what went wrong with the file, and what to do about it."""
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        where = "--safety-cache-dir, cache_dir or --cache-dir"
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            name = self.path.name
            return StoreError(
                f"the result store is damaged ({exc}); to start afresh, delete it (with any "
                f"{name}-wal and {name}-shm beside it) or use another cache directory ({where}); "
                "its generations and verdicts are then made again",
                self.path,
            )
        if code == sqlite3.SQLITE_READONLY:
            return StoreError(
                "the results file is read-only and this run has new results to store; make it "
                f"writable, or use another cache directory ({where})",
                self.path,
            )
        return StoreError(f"result store failed: {exc}", self.path)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc) from None

    @classmethod
    def in_dir(cls, cache_dir: Path) -> Store:
        """Open the store file that lives in ``cache_dir``."""
        return cls(Path(cache_dir) / STORE_FILENAME)

    def _init_schema(self) -> None:
        conn = self._conn
        #: Whether the verdicts table has the ``details`` column (a read-only version 1 lacks it).
        self._details = True
        if self.read_only:
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            self._details = self._check_version(row) == str(SCHEMA_VERSION)
            return
        self._enable_wal()
        # NORMAL in WAL mode survives process crashes; only power loss can drop the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._write():
            for statement in _SCHEMA:  # not executescript: it would COMMIT this transaction
                conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif self._check_version(row) != str(SCHEMA_VERSION):
                # In the write transaction: of several processes opening an old file, one
                # migrates it and the others find it migrated.
                for statement in _MIGRATES[row[0]]:
                    conn.execute(statement)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    def _check_version(self, row: tuple[str] | None) -> str:
        """The file's version, when this code reads it (its own, or one it migrates)."""
        version = str(SCHEMA_VERSION) if row is None else row[0]
        if version != str(SCHEMA_VERSION) and version not in _MIGRATES:
            raise StoreError(
                f"result store schema version {version}, expected {SCHEMA_VERSION}; delete the "
                "file or use another cache dir",
                self.path,
            )
        return version

    def _enable_wal(self) -> None:
        """Switch to WAL (persistent, so later opens are cheap no-ops). SQLite answers BUSY at
        once, without the busy handler, while another connection holds the file during the
        switch (several workers opening a new store), so retry up to the busy timeout."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction. ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent
        writers queue on the busy timeout instead of failing when a read lock must be upgraded."""
        with self._guarded():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _by_key(self, table: str, columns: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """``(key, *columns)`` of the rows of ``table`` whose key is one of ``keys``, asked in
        chunks SQLite accepts."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, {columns} FROM {table} WHERE key IN ({marks})"
            with self._guarded():
                rows += self._conn.execute(query, tuple(chunk)).fetchall()
        return rows

    def _insert(self, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        """``rows`` through ``statement`` in one write transaction; none, no transaction."""
        if rows:
            with self._write():
                self._conn.executemany(statement, rows)

    def get_generations(self, keys: Sequence[str]) -> dict[str, str]:
        """Map each cached key to its response; missing keys are absent from the result."""
        return {key: response for key, response in self._by_key("generations", "response", keys)}

    def put_generations(self, items: Iterable[Generation]) -> None:
        """Store responses in one transaction; an existing key is kept (its content is equal)."""
        now = time.time()
        rows = [(g.key, g.fingerprint, g.prompt_id, g.response, now) for g in items]
        self._insert(
            "INSERT OR IGNORE INTO generations (key, fingerprint, prompt_id, response, created)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def get_verdicts(self, keys: Sequence[str]) -> dict[str, Verdict]:
        """Map each cached key to its verdict; missing keys are absent from the result."""
        found: dict[str, Verdict] = {}
        details = "details" if self._details else "NULL"
        rows = self._by_key("verdicts", f"score, label, rationale, judge_id, {details}", keys)
        for key, score, label, rationale, judge_id, extra in rows:
            try:
                verdict = Verdict(score, Label(label), rationale, judge_id)
                found[key] = with_details(verdict, json.loads(extra)) if extra else verdict
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise StoreError(f"verdict {key} is unreadable: {exc}", self.path) from None
        return found

    def put_verdicts(self, items: Iterable[tuple[str, Verdict]]) -> None:
        """Store verdicts in one transaction; an existing key is kept.

        Raises ``ValueError`` (before writing anything) for an ``error`` verdict: errors must be
        retried on the next run, so caching one would freeze a transient judge failure.
        """
        now = time.time()
        rows = []
        for key, verdict in items:
            if verdict.label is Label.ERROR:
                raise ValueError(f"error verdicts are not cached (key {key}); filter them out")
            details = verdict.details()
            extra = json.dumps(details, sort_keys=True) if details else None
            label, rationale = str(verdict.label), verdict.rationale
            rows.append((key, verdict.judge_id, verdict.score, label, rationale, now, extra))
        self._insert(
            "INSERT OR IGNORE INTO verdicts"
            " (key, judge_id, score, label, rationale, created, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def put_errors(self, items: Iterable[tuple[str, Verdict]]) -> None:
        """Record error verdicts (reason and the judge's raw reply) for inspection, replacing
        an older error of the same key. They are never returned as verdicts: the next run
        judges these items again."""
        now = time.time()
        rows = [(k, v.judge_id, v.rationale, v.raw, now) for k, v in items]
        self._insert(
            "INSERT OR REPLACE INTO judge_errors (key, judge_id, reason, raw, created)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def judge_errors(self) -> list[tuple[str, str, str]]:
        """``(key, reason, raw reply)`` of the recorded judge errors, oldest first."""
        query = "SELECT key, reason, raw FROM judge_errors ORDER BY created, key"
        return [(str(k), str(r), str(w)) for k, r, w in self._conn.execute(query)]

    def count_generations(self, fingerprint: str | None = None) -> int:
        """Number of cached responses, overall or for one model fingerprint."""
        if fingerprint is None:
            row = self._conn.execute("SELECT COUNT(*) FROM generations").fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM generations WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        return int(row[0])

    def count_verdicts(self) -> int:
        """Number of cached verdicts."""
        return int(self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        """Close the connection; committed data is already durable."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
