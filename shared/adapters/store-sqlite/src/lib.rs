//! Ember's embedded store: one SQLite file implementing [`ember_service::ports::Store`].
//!
//! This is the store behind `ember dev`, the scenario runner and the tests: no server, no
//! credentials, one file you can copy, inspect with `sqlite3`, or delete.
//!
//! # Connection
//!
//! One [`rusqlite::Connection`] behind a [`std::sync::Mutex`]; every call does its (short) work
//! inline while holding the lock. The file is opened in WAL mode with `synchronous=NORMAL`
//! (durable across application crashes; a power cut may lose the last commits, never corrupt the
//! file) and a busy timeout, so a second process (the CLI next to a running dev server) waits for
//! the writer instead of failing at once. Every commit runs in one `BEGIN IMMEDIATE` transaction:
//! the write lock is taken up front, so the version check and the write can't interleave with
//! another writer, even in another process.
//!
//! # Schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`)
//!
//! ```sql
//! -- One row per lead. `body` is the lead as JSON (`ember_scoring::Lead`).
//! -- Due times are Unix milliseconds, NULL when nothing of that kind is scheduled.
//! CREATE TABLE leads (
//!     id        TEXT PRIMARY KEY,
//!     version   INTEGER NOT NULL,   -- 1 on creation, +1 on every commit
//!     body      TEXT NOT NULL,
//!     email     TEXT,               -- copy of body.email, for ad-hoc queries
//!     decay_due INTEGER,
//!     drip_due  INTEGER,
//!     sla_due   INTEGER
//! );
//! -- Partial indexes: only leads that have something due are in them, so a due query
//! -- reads only due entries, however many leads are stored.
//! CREATE INDEX leads_decay_due ON leads (decay_due, id) WHERE decay_due IS NOT NULL;
//! CREATE INDEX leads_drip_due  ON leads (drip_due, id)  WHERE drip_due IS NOT NULL;
//! CREATE INDEX leads_sla_due   ON leads (sla_due, id)   WHERE sla_due IS NOT NULL;
//!
//! -- Identity key (`EMAIL#…`, `ANON#…`, see `Identity::key`) → lead id.
//! CREATE TABLE identities (
//!     key     TEXT PRIMARY KEY,
//!     lead_id TEXT NOT NULL
//! ) WITHOUT ROWID;
//! CREATE INDEX identities_by_lead ON identities (lead_id);
//!
//! -- Every event ever recorded (the timeline, and the dedupe set). `body` is the
//! -- `StoredEvent` as JSON. An erased event keeps only its id (and seq): every other column
//! -- is set to NULL, so `seen` still knows it and a replay can't bring the person back.
//! CREATE TABLE events (
//!     seq         INTEGER PRIMARY KEY,   -- insertion order (ties on `at`)
//!     event_id    TEXT NOT NULL UNIQUE,
//!     lead_id     TEXT,                  -- NULL once erased
//!     at          INTEGER,               -- event time, Unix ms
//!     body        TEXT,
//!     received_at INTEGER
//! );
//! CREATE INDEX events_by_lead ON events (lead_id, at) WHERE lead_id IS NOT NULL;
//!
//! -- Report counters (see `ember_reports::facts`): the commit adds its increments in its own
//! -- transaction; erasure leaves them (erased people keep counting, anonymously).
//! CREATE TABLE tallies (
//!     day TEXT NOT NULL,                 -- YYYY-MM-DD, model time zone
//!     key TEXT NOT NULL,
//!     n   INTEGER NOT NULL,
//!     PRIMARY KEY (day, key)
//! ) WITHOUT ROWID;
//! ```
//!
//! # Time
//!
//! Times in indexed columns are Unix milliseconds (negative before 1970). A due time with a
//! sub-millisecond part is rounded *up* (a lead is never reported due before it is), and `now`
//! is rounded down, by the ports' rule ([`ember_service::ports::due_millis`]); the due time
//! returned by [`Store::due`] is the stored (rounded) one. Bodies keep full precision.
//!
//! # Merges, released identities and erasure
//!
//! A commit that retires a lead deletes its row and re-points every identity still pointing at
//! it to the surviving lead. A commit that releases identities (a cookie following another
//! person) rewrites the previous owner's body in the same transaction, under its version; its
//! due columns stay (only its identities change). The retired lead's events stay recorded under its own id (they are
//! its timeline; the survivor lists it in `merged_from`). [`Store::erase`] therefore erases the
//! events of the lead *and* of every lead in its `merged_from`, so no part of the person's
//! history survives an erasure.

use async_trait::async_trait;
use chrono::DateTime;
use ember_scoring::{Lead, Time};
use ember_service::ports::{
    Commit, DueKind, DuePage, ErasureScope, Identity, LeadRecord, Store, StoreError, StoredEvent, Tally, due_millis,
    now_millis,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Schema version this build writes (`PRAGMA user_version`). Opening a file with a newer version
/// fails rather than risk misreading it.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: initial schema.
    "
    CREATE TABLE leads (
        id        TEXT PRIMARY KEY,
        version   INTEGER NOT NULL,
        body      TEXT NOT NULL,
        email     TEXT,
        decay_due INTEGER,
        drip_due  INTEGER,
        sla_due   INTEGER
    );
    CREATE INDEX leads_decay_due ON leads (decay_due, id) WHERE decay_due IS NOT NULL;
    CREATE INDEX leads_drip_due  ON leads (drip_due, id)  WHERE drip_due IS NOT NULL;
    CREATE INDEX leads_sla_due   ON leads (sla_due, id)   WHERE sla_due IS NOT NULL;

    CREATE TABLE identities (
        key     TEXT PRIMARY KEY,
        lead_id TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_lead ON identities (lead_id);

    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        event_id    TEXT NOT NULL UNIQUE,
        lead_id     TEXT,
        at          INTEGER,
        body        TEXT,
        received_at INTEGER
    );
    CREATE INDEX events_by_lead ON events (lead_id, at) WHERE lead_id IS NOT NULL;
    ",
    // 1 → 2: report counters.
    "
    CREATE TABLE tallies (
        day TEXT NOT NULL,
        key TEXT NOT NULL,
        n   INTEGER NOT NULL,
        PRIMARY KEY (day, key)
    ) WITHOUT ROWID;
    ",
];

/// The embedded store: one SQLite file (or an in-memory database, for tests).
///
/// `Send + Sync`; share it as `Arc<SqliteStore>` or `Arc<dyn Store>`.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the store file at `path`, and creates or migrates its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(ctx(&format!("opening {}", path.display())))?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A fresh, private in-memory store (tests). Gone when dropped.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(ctx("opening an in-memory database"))?;
        Self::init(conn, None)
    }

    /// The file this store was opened on (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(ctx("setting the busy timeout"))?;
        // `journal_mode` answers with the mode in effect (`memory` for in-memory databases).
        let _mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(ctx("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(ctx("setting synchronous"))?;
        // Deleted content is overwritten with zeros, so an erasure leaves no trace in free pages.
        conn.pragma_update(None, "secure_delete", "ON").map_err(ctx("enabling secure_delete"))?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn), path })
    }

    /// Runs `f` with the connection. A poisoned lock is recovered: a panic mid-transaction drops
    /// the transaction, which rolls it back, so the connection is consistent.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut guard: MutexGuard<'_, Connection> = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

/// Creates or upgrades the schema to [`SCHEMA_VERSION`].
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(ctx("starting the migration"))?;
    let current: i64 =
        tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx("reading the schema version"))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Other(format!(
            "the store file has schema version {current}; this build knows up to {SCHEMA_VERSION} (upgrade Ember)"
        )));
    }
    let from = usize::try_from(current).map_err(|_| StoreError::Other(format!("bad schema version {current}")))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql).map_err(ctx(&format!("migrating the schema to version {}", i + 1)))?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(ctx("writing the schema version"))?;
    tx.commit().map_err(ctx("committing the migration"))
}

/// Maps a rusqlite error to [`StoreError::Other`], saying what was being done.
fn ctx(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Other(format!("sqlite: {what}: {e}"))
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Other(format!("{what}: {e}"))
}

/// Floor milliseconds (for event times).
fn millis(t: Time) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<Time, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Other(format!("stored time {ms} ms is out of range")))
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("version {v} is out of range")))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Other(format!("stored version {v} is negative")))
}

fn due_column(kind: DueKind) -> &'static str {
    match kind {
        DueKind::Decay => "decay_due",
        DueKind::Drip => "drip_due",
        DueKind::Sla => "sla_due",
    }
}

/// Due-query cursor: `"<due millis>:<lead id>"`, the last entry returned.
fn parse_due_cursor(c: &str) -> Result<(i64, &str), StoreError> {
    c.split_once(':')
        .and_then(|(ms, id)| ms.parse::<i64>().ok().map(|ms| (ms, id)))
        .ok_or_else(|| StoreError::Other(format!("bad due cursor {c:?}")))
}

fn version_of(conn: &Connection, lead_id: &str) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT version FROM leads WHERE id = ?1")
        .and_then(|mut s| s.query_row([lead_id], |r| r.get(0)).optional())
        .map_err(ctx("reading a lead version"))?;
    v.map(to_u64).transpose()
}

fn commit_tx(conn: &mut Connection, c: &Commit) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(ctx("starting a commit"))?;
    let id = c.lead.id.as_str();

    // 1. The lead's version.
    match (c.expected_version, version_of(&tx, id)?) {
        (None, None) => {}
        (Some(e), Some(v)) if e == v => {}
        (None, Some(v)) => return Err(StoreError::Conflict(format!("lead {id} already exists (version {v})"))),
        (Some(e), None) => {
            return Err(StoreError::Conflict(format!("lead {id} does not exist (expected version {e})")));
        }
        (Some(e), Some(v)) => return Err(StoreError::Conflict(format!("lead {id} is at version {v}, expected {e}"))),
    }

    // 2. Events: each id must be new.
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (event_id, lead_id, at, body, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .map_err(ctx("preparing the event insert"))?;
        for ev in &c.events {
            let body = serde_json::to_string(ev).map_err(json_err("serializing an event"))?;
            let n = insert
                .execute(params![ev.event.id, ev.lead_id, millis(ev.event.at), body, millis(ev.received_at)])
                .map_err(ctx("inserting an event"))?;
            if n == 0 {
                return Err(StoreError::Duplicate(ev.event.id.clone()));
            }
        }
    }

    // 3. Claims: each identity must be absent or owned by the expected lead.
    for claim in &c.claims {
        let key = claim.identity.key();
        let owner: Option<String> = tx
            .prepare_cached("SELECT lead_id FROM identities WHERE key = ?1")
            .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
            .map_err(ctx("reading an identity"))?;
        if owner != claim.expected_owner {
            return Err(StoreError::Conflict(format!(
                "identity {key} points at {}, expected {}",
                owner.as_deref().unwrap_or("nothing"),
                claim.expected_owner.as_deref().unwrap_or("nothing")
            )));
        }
        tx.prepare_cached(
            "INSERT INTO identities (key, lead_id) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET lead_id = excluded.lead_id",
        )
        .and_then(|mut s| s.execute(params![key, id]))
        .map_err(ctx("writing an identity"))?;
    }

    // 3b. The previous owner of claimed identities gives them up, under its version.
    if let Some(r) = &c.release {
        c.check_release()?;
        let rid = r.lead.id.as_str();
        let body = serde_json::to_string(&r.lead).map_err(json_err("serializing a released lead"))?;
        let next = r.expected_version.checked_add(1).ok_or_else(|| StoreError::Other(format!("lead {rid}: version overflow")))?;
        let (next, expected) = (to_i64(next)?, to_i64(r.expected_version)?);
        let n = tx
            .prepare_cached("UPDATE leads SET version = ?2, body = ?3, email = ?4 WHERE id = ?1 AND version = ?5")
            .and_then(|mut s| s.execute(params![rid, next, body, r.lead.email, expected]))
            .map_err(ctx("writing a released lead"))?;
        if n != 1 {
            return Err(match version_of(&tx, rid)? {
                Some(v) => StoreError::Conflict(format!("released lead {rid} is at version {v}, expected {}", r.expected_version)),
                None => StoreError::Conflict(format!("released lead {rid} does not exist")),
            });
        }
    }

    // 4. Retire the merged lead; its remaining identities follow the survivor.
    if let Some((rid, rv)) = &c.retire {
        if rid == id {
            return Err(StoreError::Conflict(format!("lead {id} cannot retire itself")));
        }
        match version_of(&tx, rid)? {
            Some(v) if v == *rv => {}
            Some(v) => {
                return Err(StoreError::Conflict(format!("retired lead {rid} is at version {v}, expected {rv}")));
            }
            None => return Err(StoreError::Conflict(format!("retired lead {rid} does not exist"))),
        }
        tx.prepare_cached("DELETE FROM leads WHERE id = ?1")
            .and_then(|mut s| s.execute([rid]))
            .map_err(ctx("deleting a retired lead"))?;
        tx.prepare_cached("UPDATE identities SET lead_id = ?1 WHERE lead_id = ?2")
            .and_then(|mut s| s.execute([id, rid.as_str()]))
            .map_err(ctx("re-pointing a retired lead's identities"))?;
    }

    // 5. The lead itself.
    let body = serde_json::to_string(&c.lead).map_err(json_err("serializing a lead"))?;
    let version = match c.expected_version {
        None => 1,
        Some(v) => v.checked_add(1).ok_or_else(|| StoreError::Other(format!("lead {id}: version overflow")))?,
    };
    let (new_v, prev_v) = (to_i64(version)?, to_i64(c.expected_version.unwrap_or(0))?);
    let due = [c.due.decay, c.due.drip, c.due.sla].map(|t| t.map(due_millis));
    let email = c.lead.email.as_deref();
    let written = match c.expected_version {
        None => tx
            .prepare_cached(
                "INSERT INTO leads (id, version, body, email, decay_due, drip_due, sla_due)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| s.execute(params![id, new_v, body, email, due[0], due[1], due[2]])),
        Some(_) => tx
            .prepare_cached(
                "UPDATE leads SET version = ?2, body = ?3, email = ?4, decay_due = ?5, drip_due = ?6, sla_due = ?7
                 WHERE id = ?1 AND version = ?8",
            )
            .and_then(|mut s| s.execute(params![id, new_v, body, email, due[0], due[1], due[2], prev_v])),
    }
    .map_err(ctx("writing a lead"))?;
    if written != 1 {
        // Unreachable under BEGIN IMMEDIATE (checked above), kept as a guard.
        return Err(StoreError::Conflict(format!("lead {id} changed during the commit")));
    }

    // 6. Report counters, in the same transaction.
    if !c.tallies.is_empty() {
        let mut add = tx
            .prepare_cached(
                "INSERT INTO tallies (day, key, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, key) DO UPDATE SET n = n + excluded.n",
            )
            .map_err(ctx("preparing the counter update"))?;
        for t in &c.tallies {
            add.execute(params![t.day.format("%Y-%m-%d").to_string(), t.key, t.n]).map_err(ctx("adding to a counter"))?;
        }
    }
    tx.commit().map_err(ctx("committing"))?;
    Ok(version)
}

fn due_tx(
    conn: &Connection,
    kind: DueKind,
    now: Time,
    cursor: Option<&str>,
    limit: usize,
) -> Result<DuePage, StoreError> {
    if limit == 0 {
        return Ok(DuePage::default());
    }
    let col = due_column(kind);
    let now = now_millis(now);
    // One more than asked, to know whether there is a next page.
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1).saturating_add(1);
    let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?));
    // INDEXED BY: fail loudly rather than fall back to a table scan.
    let rows: Vec<(String, i64)> = match cursor {
        None => conn
            .prepare_cached(&format!(
                "SELECT id, {col} FROM leads INDEXED BY leads_{col}
                 WHERE {col} IS NOT NULL AND {col} <= ?1
                 ORDER BY {col}, id LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![now, fetch], map)?.collect()),
        Some(c) => {
            let (after_ms, after_id) = parse_due_cursor(c)?;
            conn.prepare_cached(&format!(
                "SELECT id, {col} FROM leads INDEXED BY leads_{col}
                 WHERE {col} IS NOT NULL AND {col} <= ?1 AND ({col}, id) > (?2, ?3)
                 ORDER BY {col}, id LIMIT ?4"
            ))
            .and_then(|mut s| s.query_map(params![now, after_ms, after_id, fetch], map)?.collect())
        }
    }
    .map_err(ctx("querying due leads"))?;
    let read = rows.len() as u64;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for (id, ms) in rows.into_iter().take(limit) {
        last = Some(format!("{ms}:{id}"));
        items.push((id, from_millis(ms)?));
    }
    Ok(DuePage { items, cursor: if more { last } else { None }, read })
}

fn erase_tx(conn: &mut Connection, lead_id: &str) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(ctx("starting an erasure"))?;
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM leads WHERE id = ?1")
        .and_then(|mut s| s.query_row([lead_id], |r| r.get(0)).optional())
        .map_err(ctx("reading the lead to erase"))?;
    // Profiles merged into this one keep their events under their own ids: erase those too.
    // Identities go by the `identities_by_lead` index (every one still pointing at the lead).
    let scope = body.as_deref().map_or_else(|| ErasureScope::of_id(lead_id), |b| ErasureScope::of_body(lead_id, b));
    tx.prepare_cached("DELETE FROM leads WHERE id = ?1")
        .and_then(|mut s| s.execute([lead_id]))
        .map_err(ctx("deleting the lead"))?;
    tx.prepare_cached("DELETE FROM identities WHERE lead_id = ?1")
        .and_then(|mut s| s.execute([lead_id]))
        .map_err(ctx("deleting the lead's identities"))?;
    for owner in &scope.lead_ids {
        tx.prepare_cached(
            "UPDATE events SET lead_id = NULL, at = NULL, body = NULL, received_at = NULL WHERE lead_id = ?1",
        )
        .and_then(|mut s| s.execute([owner]))
        .map_err(ctx("erasing the lead's events"))?;
    }
    tx.commit().map_err(ctx("committing the erasure"))?;
    // The write-ahead log still holds the old pages: fold it into the database and empty it.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(body.is_some())
}

#[async_trait]
impl Store for SqliteStore {
    async fn lookup(&self, identity: &Identity) -> Result<Option<String>, StoreError> {
        let key = identity.key();
        self.with(|c| {
            c.prepare_cached("SELECT lead_id FROM identities WHERE key = ?1")
                .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
                .map_err(ctx("looking up an identity"))
        })
    }

    async fn get(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        let row: Option<(i64, String)> = self.with(|c| {
            c.prepare_cached("SELECT version, body FROM leads WHERE id = ?1")
                .and_then(|mut s| s.query_row([lead_id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(ctx("reading a lead"))
        })?;
        row.map(|(version, body)| {
            let lead: Lead = serde_json::from_str(&body)
                .map_err(|e| StoreError::Other(format!("lead {lead_id}: corrupt body: {e}")))?;
            Ok(LeadRecord { lead, version: to_u64(version)? })
        })
        .transpose()
    }

    async fn seen(&self, event_id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")
                .and_then(|mut s| s.exists([event_id]))
                .map_err(ctx("checking an event id"))
        })
    }

    async fn commit(&self, commit: Commit) -> Result<u64, StoreError> {
        self.with(|c| commit_tx(c, &commit))
    }

    async fn due(&self, kind: DueKind, now: Time, cursor: Option<String>, limit: usize) -> Result<DuePage, StoreError> {
        self.with(|c| due_tx(c, kind, now, cursor.as_deref(), limit))
    }

    async fn events(&self, lead_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let bodies: Vec<String> = self.with(|c| {
            c.prepare_cached("SELECT body FROM events WHERE lead_id = ?1 AND body IS NOT NULL ORDER BY at, seq")
                .and_then(|mut s| s.query_map([lead_id], |r| r.get(0))?.collect())
                .map_err(ctx("reading events"))
        })?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b).map_err(|e| StoreError::Other(format!("lead {lead_id}: corrupt event: {e}")))
            })
            .collect()
    }

    async fn erase(&self, lead_id: &str) -> Result<bool, StoreError> {
        self.with(|c| erase_tx(c, lead_id))
    }

    async fn tallies(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Tally>, StoreError> {
        self.with(|conn| {
            let mut st = conn
                .prepare_cached("SELECT day, key, n FROM tallies WHERE day >= ?1 AND day <= ?2 AND n != 0 ORDER BY day, key")
                .map_err(ctx("preparing the counter query"))?;
            let rows = st
                .query_map(params![from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(ctx("reading counters"))?;
            let mut out = Vec::new();
            for row in rows {
                let (day, key, n) = row.map_err(ctx("reading a counter"))?;
                let day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|e| StoreError::Other(format!("sqlite: bad counter day `{day}`: {e}")))?;
                out.push(Tally { day, key, n });
            }
            Ok(out)
        })
    }

    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<Lead>, Option<String>), StoreError> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1).saturating_add(1);
        let rows: Vec<(String, String)> = self.with(|c| {
            let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
            match &cursor {
                None => c
                    .prepare_cached("SELECT id, body FROM leads ORDER BY id LIMIT ?1")
                    .and_then(|mut s| s.query_map([fetch], map)?.collect()),
                Some(after) => c
                    .prepare_cached("SELECT id, body FROM leads WHERE id > ?1 ORDER BY id LIMIT ?2")
                    .and_then(|mut s| s.query_map(params![after, fetch], map)?.collect()),
            }
            .map_err(ctx("scanning leads"))
        })?;
        let more = rows.len() > limit;
        let mut leads = Vec::with_capacity(rows.len().min(limit));
        let mut last = None;
        for (id, body) in rows.into_iter().take(limit) {
            leads.push(
                serde_json::from_str(&body).map_err(|e| StoreError::Other(format!("lead {id}: corrupt body: {e}")))?,
            );
            last = Some(id);
        }
        Ok((leads, if more { last } else { None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
        let rows: Vec<String> =
            s.query_map([], |r| r.get::<_, String>(3)).expect("plan rows").map(|r| r.expect("row")).collect();
        rows.join("\n")
    }

    #[test]
    fn due_and_event_queries_use_their_indexes() {
        let store = SqliteStore::open_in_memory().expect("open");
        let conn = store.conn.lock().expect("lock");
        for col in ["decay_due", "drip_due", "sla_due"] {
            let p = plan(
                &conn,
                &format!(
                    "SELECT id, {col} FROM leads INDEXED BY leads_{col} WHERE {col} IS NOT NULL AND {col} <= 5 \
                     AND ({col}, id) > (1, 'a') ORDER BY {col}, id LIMIT 3"
                ),
            );
            assert!(p.contains(&format!("leads_{col} (")), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "due query sorts: {p}");
        }
        let p = plan(&conn, "SELECT body FROM events WHERE lead_id = 'x' AND body IS NOT NULL ORDER BY at, seq");
        assert!(p.contains("events_by_lead"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "events query sorts: {p}");
    }

    #[test]
    fn due_cursor_parses_ids_with_colons() {
        assert_eq!(parse_due_cursor("-5:a:b").expect("parse"), (-5, "a:b"));
        assert!(parse_due_cursor("x:a").is_err());
        assert!(parse_due_cursor("12").is_err());
    }

    #[test]
    fn due_times_round_up_now_rounds_down() {
        let t = DateTime::from_timestamp(10, 1_500_000).expect("time");
        assert_eq!(due_millis(t), 10_002);
        assert_eq!(now_millis(t), 10_001);
        let whole = DateTime::from_timestamp(10, 1_000_000).expect("time");
        assert_eq!(due_millis(whole), 10_001);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path).expect("open"));
        {
            let c = Connection::open(&path).expect("raw open");
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
        }
        let err = SqliteStore::open(&path).expect_err("newer schema must be refused");
        assert!(err.to_string().contains("schema version"), "{err}");
    }

    #[test]
    fn opens_in_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("s.db")).expect("open");
        let conn = store.conn.lock().expect("lock");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("sync");
        assert_eq!(sync, 1, "NORMAL");
    }
}
