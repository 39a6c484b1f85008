"""The page cache: page texts and encoded image features in one SQLite file (stdlib sqlite3, platformdirs).

Keys are content, not paths: the file's SHA-256, the 0-based page index, the
text's source (the PDF's text layer, or the model's transcription) and, for
what a model made, the settings fingerprint (keys.py). A first pass's words
(text, boxes, confidences) are kept per engine and its settings. The file lives in the
user's cache folder (`$VLMCLI_CACHE_DIR`, else platformdirs' user cache dir,
which follows `$XDG_CACHE_HOME` on Linux), readable by its owner only since it
holds document text.

Several processes may use it at once: WAL mode, one short transaction per
write, and a busy timeout. It is a cache, so it never stops a run: a damaged
file is moved aside and rebuilt empty with a warning, and any other SQLite or
file-system error turns the cache off for the rest of the run, with a warning.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR_ENV = "VLMCLI_CACHE_DIR"
FILE_NAME = "pages.sqlite3"
SCHEMA_VERSION = 2  # 1: page texts and features; 2: first-pass words
TEXT_LAYER = "text_layer"  # the PDF's own text (pdftotext or PDFium)
OCR = "ocr"  # a model's transcription, keyed by the run's settings fingerprint
FEATURES_LIMIT_BYTES = 2 << 30  # encoded image features kept at most; least recently used go first
BUSY_TIMEOUT_S = 30.0
_CORRUPT, _NOT_A_DATABASE = 11, 26  # SQLite's primary result codes for a damaged file
# Each version's statements, applied in order to a file at an older version; all are idempotent.
_MIGRATIONS = {1: """
CREATE TABLE IF NOT EXISTS page_text (
    file_sha256 TEXT NOT NULL, page_index INTEGER NOT NULL, source TEXT NOT NULL, settings TEXT NOT NULL,
    text TEXT NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (file_sha256, page_index, source, settings));
CREATE TABLE IF NOT EXISTS page_features (
    file_sha256 TEXT NOT NULL, page_index INTEGER NOT NULL, settings TEXT NOT NULL,
    dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL, size_bytes INTEGER NOT NULL,
    last_used_s REAL NOT NULL,
    PRIMARY KEY (file_sha256, page_index, settings));
CREATE INDEX IF NOT EXISTS page_features_lru ON page_features (last_used_s);
""", 2: """
CREATE TABLE IF NOT EXISTS page_words (
    file_sha256 TEXT NOT NULL, page_index INTEGER NOT NULL, engine TEXT NOT NULL, settings TEXT NOT NULL,
    words TEXT NOT NULL, created_s REAL NOT NULL,
    PRIMARY KEY (file_sha256, page_index, engine, settings));
"""}


def cache_dir() -> Path:
    """Where the cache lives: `$VLMCLI_CACHE_DIR`, else the platform's user cache folder for vlmcli."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlmcli", appauthor=False))


@dataclass(frozen=True)
class Features:
    """One page's encoded image features as stored: raw bytes, their dtype and shape."""

    data: bytes
    dtype: str
    shape: tuple[int, ...]


class PageCache:
    """The cache file, opened on first use. `warn` receives one line per problem (a damaged file, an error)."""

    def __init__(self, folder: Path | None = None, *, warn: Callable[[str], None] = lambda text: None,
                 features_limit_bytes: int = FEATURES_LIMIT_BYTES) -> None:
        self.path = (folder or cache_dir()) / FILE_NAME
        self.features_limit_bytes = features_limit_bytes
        self._warn = warn
        self._connection: sqlite3.Connection | None = None
        self.disabled = False

    def __enter__(self) -> PageCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get_text(self, file_sha256: str, page_index: int, source: str, settings: str = "") -> str | None:
        row = self._guarded(lambda db: db.execute(
            "SELECT text FROM page_text WHERE file_sha256=? AND page_index=? AND source=? AND settings=?",
            (file_sha256, page_index, source, settings)).fetchone())
        return row[0] if row else None

    def put_text(self, file_sha256: str, page_index: int, source: str, text: str, settings: str = "") -> None:
        self._guarded(lambda db: db.execute(
            "INSERT OR REPLACE INTO page_text VALUES (?, ?, ?, ?, ?, ?)",
            (file_sha256, page_index, source, settings, text, time.time())))

    def get_words(self, file_sha256: str, page_index: int, engine: str, settings: str) -> str | None:
        """A first pass's words of a page, as `PageWords.to_json` wrote them."""
        row = self._guarded(lambda db: db.execute(
            "SELECT words FROM page_words WHERE file_sha256=? AND page_index=? AND engine=? AND settings=?",
            (file_sha256, page_index, engine, settings)).fetchone())
        return row[0] if row else None

    def put_words(self, file_sha256: str, page_index: int, engine: str, settings: str, words: str) -> None:
        self._guarded(lambda db: db.execute(
            "INSERT OR REPLACE INTO page_words VALUES (?, ?, ?, ?, ?, ?)",
            (file_sha256, page_index, engine, settings, words, time.time())))

    def get_features(self, file_sha256: str, page_index: int, settings: str) -> Features | None:
        def read(db: sqlite3.Connection):
            key = (file_sha256, page_index, settings)
            row = db.execute("SELECT data, dtype, shape FROM page_features "
                             "WHERE file_sha256=? AND page_index=? AND settings=?", key).fetchone()
            if row is not None:
                db.execute("UPDATE page_features SET last_used_s=? WHERE file_sha256=? AND page_index=? "
                           "AND settings=?", (time.time(), *key))
            return row

        row = self._guarded(read)
        return Features(bytes(row[0]), row[1], tuple(int(n) for n in row[2].split(",") if n)) if row else None

    def put_features(self, file_sha256: str, page_index: int, settings: str, features: Features) -> None:
        """Keep a page's features, then drop the least recently used ones beyond the size limit."""
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("INSERT OR REPLACE INTO page_features VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (file_sha256, page_index, settings, features.dtype, ",".join(map(str, features.shape)),
                            features.data, len(features.data), time.time()))
                _evict(db, self.features_limit_bytes)

        self._guarded(write)

    def info(self) -> dict:
        """What the cache holds: files, pages by source, first passes, features, and its size on disk; or, for a
        damaged or unreadable file, `problem` (read only: the cache is not repaired or changed here)."""
        facts = {"path": str(self.path), "bytes_on_disk": _bytes_on_disk(self.path)}
        if not self.path.exists():
            return facts
        # Without a write-ahead log (no process writing), `immutable` reads the file without making -wal/-shm files.
        quiet = "" if Path(f"{self.path}-wal").exists() else "&immutable=1"
        try:
            connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro{quiet}", uri=True,
                                         timeout=BUSY_TIMEOUT_S)
            try:
                return {**facts, **_counts(connection)}
            finally:
                connection.close()
        except sqlite3.Error as error:
            return {**facts, "problem": f"{'damaged' if _is_damage(error) else 'cannot be read'} ({error})"}

    def _guarded(self, operation: Callable[[sqlite3.Connection], object]):
        """Run `operation` on the database; a damaged file is rebuilt once, any other failure turns the cache off."""
        for attempt in range(2):
            if self.disabled:
                return None
            try:
                return operation(self._connect())
            except sqlite3.DatabaseError as error:
                if attempt == 0 and _is_damage(error):
                    self._rebuild(error)
                    continue
                self._disable(error)
            except OSError as error:
                self._disable(error)
        return None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # document text: owner only
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                _migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _rebuild(self, error: sqlite3.DatabaseError) -> None:
        self.close()
        damaged = self.path.with_name(self.path.name + ".damaged")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if suffix:
                part.unlink(missing_ok=True)
            elif part.exists():
                os.replace(part, damaged)
        self._warn(f"the page cache {self.path} was damaged ({error}); moved it to {damaged.name} and started "
                   "a new one")

    def _disable(self, error: Exception) -> None:
        self.close()
        self.disabled = True
        self._warn(f"the page cache {self.path} cannot be used ({error}); going on without it")


def clear(folder: Path | None = None) -> int | None:
    """Delete the cache file (and a damaged one set aside); the bytes freed, or None if there was none."""
    path = (folder or cache_dir()) / FILE_NAME
    parts = [part for suffix in ("", "-wal", "-shm", ".damaged") if (part := Path(f"{path}{suffix}")).exists()]
    freed = 0
    for part in parts:
        freed += part.stat().st_size
        part.unlink()
    return freed if parts else None


def _counts(db: sqlite3.Connection) -> dict:
    sources = dict(db.execute("SELECT source, COUNT(*) FROM page_text GROUP BY source").fetchall())
    files = db.execute("SELECT COUNT(DISTINCT file_sha256) FROM page_text").fetchone()[0]
    features, feature_bytes = db.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM page_features").fetchone()
    # A cache of an older schema has no first-pass table until a run that writes opens it.
    has_words = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='page_words'").fetchone()
    words = db.execute("SELECT COUNT(*) FROM page_words").fetchone()[0] if has_words else 0
    return {"files": files, "text_layer_pages": sources.get(TEXT_LAYER, 0), "ocr_pages": sources.get(OCR, 0),
            "first_pass_pages": words, "feature_pages": features, "feature_bytes": feature_bytes}


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the file's tables up to SCHEMA_VERSION. A file a newer vlmcli wrote is left as it is: its versions
    only add tables."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    with connection:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in filter(str.strip, _MIGRATIONS[step].split(";")):
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _evict(db: sqlite3.Connection, limit_bytes: int) -> None:
    total = db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM page_features").fetchone()[0]
    for key in db.execute("SELECT file_sha256, page_index, settings, size_bytes FROM page_features "
                          "ORDER BY last_used_s").fetchall():
        if total <= limit_bytes:
            break
        db.execute("DELETE FROM page_features WHERE file_sha256=? AND page_index=? AND settings=?", key[:3])
        total -= key[3]


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_CORRUPT, _NOT_A_DATABASE)
    text = str(error)
    return "malformed" in text or "not a database" in text


def _bytes_on_disk(path: Path) -> int:
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal", "-shm")
               if Path(f"{path}{suffix}").exists())
