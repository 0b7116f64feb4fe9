//! A consistent copy of the SQLite database while Tidings serves. PostgreSQL
//! has its own tools for that (`pg_dump`).

use std::path::PathBuf;

use diesel::RunQueryDsl;
use diesel::sql_types::Text;

use super::{AnyConn, Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    /// Written, this many bytes.
    Written(u64),
    /// The file exists already: a backup never overwrites one.
    Exists,
    /// The database is PostgreSQL.
    UsePgDump,
}

impl Store {
    /// Copies the database into a new file at `path` with `VACUUM INTO`:
    /// one read transaction, so the copy is consistent while writers go on
    /// (they are not blocked; SQLite's WAL keeps readers and the writer apart).
    pub async fn backup_to(&self, path: PathBuf) -> StoreResult<BackupOutcome> {
        if path.exists() {
            return Ok(BackupOutcome::Exists);
        }
        let target = path.clone();
        let done = self
            .read(move |conn| match conn {
                AnyConn::Pg(_) => Ok(false),
                AnyConn::Sqlite(c) => {
                    diesel::sql_query("VACUUM INTO ?")
                        .bind::<Text, _>(target.to_string_lossy().into_owned())
                        .execute(&mut **c)?;
                    Ok(true)
                }
            })
            .await?;
        if !done {
            return Ok(BackupOutcome::UsePgDump);
        }
        Ok(BackupOutcome::Written(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)))
    }
}
