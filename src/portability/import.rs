//! `tidings subscribers import` and `POST /admin/subscribers/import`: a CSV
//! file read as a stream (a thread parses, the store applies a batch at a
//! time), so memory stays flat at a million rows.

use std::io::Read;

use serde::Serialize;
use tokio::sync::mpsc;

use super::decode::{self, Encoding};
use super::formats::{Format, Header, ImportRow, InvalidRow, read_row};
use crate::store::imports::{ImportSettings, RowOutcome};
use crate::store::{Store, StoreError};

/// Rows per transaction.
const BATCH: usize = 1000;
/// Invalid rows listed one by one in the report; beyond, only counted.
const LISTED_INVALID: usize = 1000;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportReport {
    pub list: String,
    pub format: String,
    pub encoding: String,
    pub dry_run: bool,
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Kept as they are: rows that would resurrect an unsubscribed or
    /// suppressed reader or downgrade a confirmed one, and repeated rows.
    pub skipped: u64,
    pub invalid: u64,
    /// Every invalid row with its line number and reason (the first 1000).
    pub invalid_rows: Vec<InvalidRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole cannot be imported; nothing was written.
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads `open()` twice: once to tell its encoding, once to import it.
pub async fn import<R, F>(
    store: &Store,
    settings: ImportSettings,
    format: &str,
    open: F,
    mut progress: impl FnMut(&ImportReport),
) -> Result<ImportReport, ImportError>
where
    R: Read + Send + 'static,
    F: Fn() -> std::io::Result<R> + Send + 'static,
{
    let wanted = format.to_owned();
    let (header_tx, header_rx) = tokio::sync::oneshot::channel();
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let list = settings.list.clone();
    let reader = std::thread::spawn(move || read_batches(open, &wanted, &list, header_tx, tx));
    let (format, encoding) = match header_rx.await {
        Ok(Ok(found)) => found,
        Ok(Err(why)) => return Err(ImportError::File(why)),
        Err(_) => return Err(ImportError::File("the file could not be read".into())),
    };
    let mut report = ImportReport {
        list: settings.list.clone(),
        format: format.name().into(),
        encoding: encoding.name().into(),
        dry_run: settings.dry_run,
        ..ImportReport::default()
    };
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Rows { rows, invalid, other_lists } => {
                report.rows += (rows.len() + invalid.len()) as u64 + other_lists;
                report.skipped += other_lists;
                report.invalid += invalid.len() as u64;
                let room = LISTED_INVALID.saturating_sub(report.invalid_rows.len());
                report.invalid_rows.extend(invalid.into_iter().take(room));
                if !rows.is_empty() {
                    for outcome in store.import_batch(rows, settings.clone()).await? {
                        match outcome {
                            RowOutcome::Created => report.created += 1,
                            RowOutcome::Updated => report.updated += 1,
                            RowOutcome::Unchanged => report.unchanged += 1,
                            RowOutcome::Skipped => report.skipped += 1,
                        }
                    }
                }
                progress(&report);
            }
            Batch::Failed(why) => return Err(ImportError::File(why)),
        }
    }
    let _ = reader.join();
    Ok(report)
}

enum Batch {
    Rows {
        rows: Vec<ImportRow>,
        invalid: Vec<InvalidRow>,
        other_lists: u64,
    },
    /// The file stopped being readable part way (the rows before it are in).
    Failed(String),
}

type HeaderAnswer = Result<(Format, Encoding), String>;

fn read_batches<R: Read, F: Fn() -> std::io::Result<R>>(
    open: F,
    wanted: &str,
    list: &str,
    header_tx: tokio::sync::oneshot::Sender<HeaderAnswer>,
    tx: mpsc::Sender<Batch>,
) {
    let encoding = match open().and_then(decode::sniff) {
        Ok(Encoding::Binary) => {
            let _ = header_tx.send(Err("this is not a CSV file (it holds binary data)".into()));
            return;
        }
        Ok(e) => e,
        Err(e) => {
            let _ = header_tx.send(Err(format!("could not read the file: {e}")));
            return;
        }
    };
    let source = match open() {
        Ok(s) => s,
        Err(e) => {
            let _ = header_tx.send(Err(format!("could not read the file: {e}")));
            return;
        }
    };
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(decode::utf8_reader(source, encoding));
    let header = match csv.headers() {
        Ok(h) => Header::new(h.iter()),
        Err(e) => {
            let _ = header_tx.send(Err(format!("this is not a CSV file: {e}")));
            return;
        }
    };
    let format = match Format::of_header(&header, wanted) {
        Ok(f) => f,
        Err(why) => {
            let _ = header_tx.send(Err(why));
            return;
        }
    };
    if header_tx.send(Ok((format, encoding))).is_err() {
        return;
    }
    let mut rows = Vec::with_capacity(BATCH);
    let mut invalid = Vec::new();
    let mut other_lists = 0;
    let mut record = csv::StringRecord::new();
    loop {
        // The header is line 1; a record's line is where it starts.
        let line = csv.position().line() + 1;
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => match read_row(format, &header, &record, line.saturating_sub(1).max(2), list) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => other_lists += 1,
                Err(bad) => invalid.push(bad),
            },
            Err(e) => {
                let _ = tx.blocking_send(Batch::Rows {
                    rows: std::mem::take(&mut rows),
                    invalid: std::mem::take(&mut invalid),
                    other_lists,
                });
                let _ = tx.blocking_send(Batch::Failed(format!("line {line}: {e}; the rows before it were imported")));
                return;
            }
        }
        if rows.len() + invalid.len() >= BATCH {
            let batch =
                Batch::Rows { rows: std::mem::take(&mut rows), invalid: std::mem::take(&mut invalid), other_lists };
            other_lists = 0;
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
    }
    let _ = tx.blocking_send(Batch::Rows { rows, invalid, other_lists });
}
