//! The only code that speaks SQL. One backend switch (`AnyConn`), embedded
//! migrations, then one file per table family. Query code is written once and
//! compiled for each backend by `per_backend!`; `on_backend!` picks the copy
//! that matches the connection at hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

/// Writes the enclosed items twice: as `sqlite::…` for `SqliteConnection` and
/// as `pg::…` for `PgConnection`, each seeing its backend's helpers from
/// `backend` (the type `Conn`, `write_tx`, row locks).
macro_rules! per_backend {
    ($($item:item)*) => {
        pub(crate) mod sqlite {
            #![allow(unused_imports)]
            use super::*;
            use $crate::store::backend::sqlite::*;
            $($item)*
        }
        pub(crate) mod pg {
            #![allow(unused_imports)]
            use super::*;
            use $crate::store::backend::pg::*;
            $($item)*
        }
    };
}

/// Calls `module::sqlite::f` or `module::pg::f` with the connection held.
macro_rules! on_backend {
    ($conn:expr, $module:ident :: $f:ident ( $($arg:expr),* $(,)? )) => {
        match $conn {
            $crate::store::AnyConn::Sqlite(c) => $module::sqlite::$f(c, $($arg),*),
            $crate::store::AnyConn::Pg(c) => $module::pg::$f(c, $($arg),*),
        }
    };
}

pub mod api_keys;
pub mod archive;
pub mod authors;
mod backend;
pub mod backup;
pub mod deliveries;
pub mod digests;
pub mod imports;
pub mod lists;
pub mod outbox;
pub mod overview;
pub mod posts;
pub mod preferences;
pub mod readers;
pub mod schedules;
mod schema;
pub mod secrets;
pub mod senders;
pub mod signups;
pub mod subscriptions;
pub mod suppressions;
pub mod tallies;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a request waits for a database connection before answering 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) enum AnyConn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Pg(PooledConnection<ConnectionManager<PgConnection>>),
}

#[derive(Clone)]
enum Pools {
    /// SQLite allows one writer at a time; one write connection queues
    /// writers in the process instead of spinning in the busy handler.
    Sqlite {
        read: Pool<ConnectionManager<SqliteConnection>>,
        write: Pool<ConnectionManager<SqliteConnection>>,
    },
    Pg(Pool<ConnectionManager<PgConnection>>),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[from] diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("database unavailable: {0}")]
    Down(String),
}

impl StoreError {
    /// True when the database could not be reached at all (answer 503, retry
    /// later) rather than a query going wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Down(_) => true,
            Self::Query(e) => query_lost_connection(e),
            Self::Migration(_) | Self::Task(_) => false,
        }
    }
}

/// A query error that says the connection is gone, by its kind. A server
/// stopping mid-transaction also reaches diesel as a failed commit whose
/// rollback failed too, or as a transaction manager left broken by such a
/// failure.
fn query_lost_connection(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(kind, _) => matches!(kind, DatabaseErrorKind::ClosedConnection),
        Error::RollbackErrorOnCommit { rollback_error, commit_error } => {
            query_lost_connection(rollback_error) || query_lost_connection(commit_error)
        }
        Error::BrokenTransactionManager => true,
        _ => false,
    }
}

/// An error that may mean the connection is gone, though its kind does not
/// say so: diesel passes no SQLSTATE on, and reports a PostgreSQL server
/// shutting down (class 57) or a connection dropped mid-query as an unknown
/// error whose only clue is its text, in the server's language. The
/// connection itself is asked instead (see `run_on`).
fn may_have_lost_connection(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(e, Error::DatabaseError(DatabaseErrorKind::Unknown, _) | Error::RollbackErrorOnCommit { .. })
}

/// Whether the connection still answers a trivial query.
fn still_answers(conn: &mut AnyConn) -> bool {
    let probe = diesel::sql_query("SELECT 1");
    match conn {
        AnyConn::Sqlite(c) => probe.execute(&mut **c).is_ok(),
        AnyConn::Pg(c) => probe.execute(&mut **c).is_ok(),
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs a read-then-write transaction once more if it lost a race on a
/// unique key: another request inserted the same row (a post's URL, a
/// digest's idempotency key) between this one's read and its insert.
/// Asked again, it finds that row and answers as for a retry.
fn again_on_unique_violation<T>(
    conn: &mut AnyConn,
    f: impl Fn(&mut AnyConn) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    use diesel::result::{DatabaseErrorKind, Error};
    match f(conn) {
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => f(conn),
        other => other,
    }
}

/// Times are stored as UTC without a zone; the API shows them as RFC 3339.
pub(crate) fn utc<S: serde::Serializer>(t: &chrono::NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

pub(crate) fn utc_opt<S: serde::Serializer>(t: &Option<chrono::NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => utc(t, s),
        None => s.serialize_none(),
    }
}

/// Runs `f` on a pooled connection on the blocking thread pool.
/// Tasks waiting for a pooled connection right now (for the metrics).
static WAITING: AtomicU64 = AtomicU64::new(0);

/// The connection pools as the metrics show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
    pub waiting: u64,
}

async fn run_on<T, F>(pools: Arc<Pools>, writes: bool, f: F) -> StoreResult<T>
where
    F: FnOnce(&mut AnyConn) -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        WAITING.fetch_add(1, Ordering::Relaxed);
        let conn = match &*pools {
            Pools::Sqlite { write, .. } if writes => write.get().map(AnyConn::Sqlite),
            Pools::Sqlite { read, .. } => read.get().map(AnyConn::Sqlite),
            Pools::Pg(pool) => pool.get().map(AnyConn::Pg),
        };
        WAITING.fetch_sub(1, Ordering::Relaxed);
        let mut conn = conn?;
        match f(&mut conn) {
            // An error that may be a lost connection is unavailability when
            // the connection no longer answers: told apart by asking it, not
            // by the wording of the error.
            Err(StoreError::Query(e)) if may_have_lost_connection(&e) && !still_answers(&mut conn) => {
                Err(StoreError::Down(e.to_string()))
            }
            other => other,
        }
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

/// A handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    signups: tokio::sync::mpsc::Sender<PendingSignup>,
}

type PendingSignup = (signups::SignupRequest, tokio::sync::oneshot::Sender<StoreResult<signups::SignupOutcome>>);

/// Signups committed together at most.
const SIGNUP_GROUP: usize = 64;
/// Groups committed side by side on PostgreSQL.
const SIGNUP_WRITERS_PG: usize = 4;

/// Takes whatever signups have queued up while the last group was being
/// committed and commits them as the next group. Several of these run side
/// by side on PostgreSQL (each group costs round trips on one connection);
/// one on SQLite, which has one writer anyway.
///
/// It holds the pools, not a `Store`: when the last `Store` is dropped the
/// queue closes, this ends, and the connections close with it.
async fn commit_signups(pools: Arc<Pools>, queue: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<PendingSignup>>>) {
    loop {
        let pending = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else { return };
            let mut pending = vec![first];
            while pending.len() < SIGNUP_GROUP {
                match queue.try_recv() {
                    Ok(next) => pending.push(next),
                    Err(_) => break,
                }
            }
            pending
        };
        let (group, answers): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let committed = run_on(Arc::clone(&pools), true, move |conn| {
            let outcomes = on_backend!(conn, signups::signup_group(&group))?;
            // A signup that failed on its own may have failed on a lost
            // connection: asked once for the whole group, as in `run_on`.
            let suspect = outcomes.iter().any(|o| o.as_ref().is_err_and(may_have_lost_connection));
            let lost = suspect && !still_answers(conn);
            Ok(outcomes
                .into_iter()
                .map(|o| {
                    o.map_err(|e| {
                        if lost && may_have_lost_connection(&e) {
                            StoreError::Down(e.to_string())
                        } else {
                            StoreError::from(e)
                        }
                    })
                })
                .collect::<Vec<_>>())
        });
        match committed.await {
            Ok(outcomes) => {
                for (outcome, answer) in outcomes.into_iter().zip(answers) {
                    let _ = answer.send(outcome);
                }
            }
            Err(e) => {
                let down = e.is_unavailable();
                let message = e.to_string();
                for answer in answers {
                    let error =
                        if down { StoreError::Down(message.clone()) } else { StoreError::Task(message.clone()) };
                    let _ = answer.send(Err(error));
                }
            }
        }
    }
}

/// Per-connection SQLite settings, with the page cache each may fill.
#[derive(Debug)]
struct SqlitePragmas {
    cache_kib: u32,
}

/// The writer keeps SQLite's usual 2 MB cache: it claims and records every
/// delivery. Readers share the operating system's file cache; with a cache
/// each of their own, a big database would fill one per pooled connection.
const SQLITE_WRITER_CACHE_KIB: u32 = 2000;
const SQLITE_READER_CACHE_KIB: u32 = 256;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the writer; NORMAL sync is durable
        // across application crashes and loses at most the last commits on
        // power loss; the busy timeout covers other processes (CLI, worker).
        // batch_execute runs every statement; sql_query would run only the first.
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -{};",
            self.cache_kib
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Connects, runs pending migrations and returns a ready store.
    pub async fn connect(url: &DatabaseUrl, pool_size: u32) -> StoreResult<Self> {
        let url = url.clone();
        let pools = tokio::task::spawn_blocking(move || Self::connect_blocking(&url, pool_size))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        // The queue is bounded: under overload, signups wait here rather than
        // pile up in memory.
        let (signups, queue) = tokio::sync::mpsc::channel(SIGNUP_GROUP * 16);
        let writers = match pools {
            Pools::Sqlite { .. } => 1,
            Pools::Pg(_) => SIGNUP_WRITERS_PG,
        };
        let store = Self { pools: Arc::new(pools), signups };
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..writers {
            tokio::spawn(commit_signups(Arc::clone(&store.pools), Arc::clone(&queue)));
        }
        Ok(store)
    }

    fn connect_blocking(url: &DatabaseUrl, pool_size: u32) -> StoreResult<Pools> {
        let pools = match url {
            DatabaseUrl::Sqlite(path) => {
                let manager = || ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
                let write = Pool::builder()
                    .max_size(1)
                    .connection_timeout(Duration::from_secs(30))
                    .connection_customizer(Box::new(SqlitePragmas { cache_kib: SQLITE_WRITER_CACHE_KIB }))
                    .build(manager())?;
                let mut conn = write.get()?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| StoreError::Migration(e.to_string()))?;
                drop(conn);
                let read = Pool::builder()
                    .max_size(pool_size)
                    .connection_timeout(CHECKOUT_TIMEOUT)
                    .connection_customizer(Box::new(SqlitePragmas { cache_kib: SQLITE_READER_CACHE_KIB }))
                    .build(manager())?;
                Pools::Sqlite { read, write }
            }
            DatabaseUrl::Postgres(url) => {
                let pool = Pool::builder()
                    .max_size(pool_size)
                    .connection_timeout(CHECKOUT_TIMEOUT)
                    .build(ConnectionManager::<PgConnection>::new(url))?;
                let mut conn = pool.get()?;
                // Several instances may start at once: one migrates, the rest wait.
                diesel::sql_query("SELECT pg_advisory_lock(7163551)").execute(&mut conn)?;
                let migrated = conn
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(drop)
                    .map_err(|e| StoreError::Migration(e.to_string()));
                diesel::sql_query("SELECT pg_advisory_unlock(7163551)").execute(&mut conn)?;
                migrated?;
                drop(conn);
                Pools::Pg(pool)
            }
        };
        Ok(pools)
    }

    pub fn pool_state(&self) -> PoolState {
        let states = match &*self.pools {
            Pools::Sqlite { read, write } => vec![read.state(), write.state()],
            Pools::Pg(pool) => vec![pool.state()],
        };
        PoolState {
            in_use: states.iter().map(|s| s.connections - s.idle_connections).sum(),
            idle: states.iter().map(|s| s.idle_connections).sum(),
            waiting: WAITING.load(Ordering::Relaxed),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match *self.pools {
            Pools::Sqlite { .. } => "sqlite",
            Pools::Pg(_) => "postgres",
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool. Use for
    /// reads; SQLite readers never wait for the writer.
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut AnyConn) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(false, f).await
    }

    /// Like `read`, for work that writes.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut AnyConn) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(true, f).await
    }

    async fn run<T, F>(&self, writes: bool, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut AnyConn) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        run_on(Arc::clone(&self.pools), writes, f).await
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            match conn {
                AnyConn::Sqlite(c) => diesel::sql_query("SELECT 1").execute(&mut **c)?,
                AnyConn::Pg(c) => diesel::sql_query("SELECT 1").execute(&mut **c)?,
            };
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_unavailable_however_diesel_wraps_it() {
        use diesel::result::{DatabaseErrorKind, Error};
        let db = |message: &str| Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()));
        let lost = || Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::new()));
        let cases = [
            (lost(), true),
            // By its text alone an unknown error is not unavailability, in
            // any language: `run_on` asks the connection.
            (db("terminating connection due to administrator command"), false),
            (db("Verbindung wird abgebrochen aufgrund von Anweisung des Administrators"), false),
            (Error::RollbackErrorOnCommit { rollback_error: Box::new(lost()), commit_error: Box::new(lost()) }, true),
            (Error::RollbackErrorOnCommit { rollback_error: Box::new(lost()), commit_error: Box::new(db("x")) }, true),
            (Error::BrokenTransactionManager, true),
            (db("duplicate key value violates unique constraint"), false),
            (Error::NotFound, false),
        ];
        for (error, unavailable) in cases {
            let text = error.to_string();
            assert_eq!(StoreError::Query(error).is_unavailable(), unavailable, "{text}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_connections_get_every_pragma() {
        let path = std::env::temp_dir().join(format!("tidings-pragmas-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&DatabaseUrl::Sqlite(path.clone()), 2).await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        let read = |column: &'static str, pragma: &'static str| {
            store.read(move |conn| {
                let AnyConn::Sqlite(c) = conn else { unreachable!() };
                let rows: Vec<Value> =
                    diesel::sql_query(format!("SELECT {column} AS v FROM pragma_{pragma}")).load(&mut **c)?;
                Ok(rows[0].v)
            })
        };
        assert_eq!(read("foreign_keys", "foreign_keys").await.unwrap(), 1);
        assert_eq!(read("timeout", "busy_timeout").await.unwrap(), 10_000);
        assert_eq!(read("synchronous", "synchronous").await.unwrap(), 1, "NORMAL");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
