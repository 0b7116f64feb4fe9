//! The CSV export, a page of rows at a time (memory stays flat at a million
//! readers): the header row of Tidings' own import format.

use chrono::NaiveDateTime;
use tokio::sync::mpsc;

use crate::store::readers::{ExportFilter, ExportRow};
use crate::store::{Store, StoreResult};

pub const HEADER: [&str; 8] =
    ["email", "name", "list", "status", "subscribed_at", "confirmed_at", "unsubscribed_at", "consent_source"];

/// Rows per query.
const PAGE: i64 = 5000;

/// Sends the export as CSV chunks into `out`, waiting while its reader is
/// behind; stops early when the reader went away. Returns the rows sent.
pub async fn export(store: &Store, filter: ExportFilter, out: mpsc::Sender<Vec<u8>>) -> StoreResult<u64> {
    let mut after = 0;
    let mut written = 0;
    if out.send(csv_line(&HEADER)).await.is_err() {
        return Ok(0);
    }
    loop {
        let rows = store.export_page(filter.clone(), after, PAGE).await?;
        let Some(last) = rows.last() else { return Ok(written) };
        after = last.id;
        let mut chunk = Vec::with_capacity(rows.len() * 96);
        for row in &rows {
            chunk.extend(csv_line(&fields(row)));
        }
        written += rows.len() as u64;
        if out.send(chunk).await.is_err() {
            return Ok(written);
        }
    }
}

fn fields(row: &ExportRow) -> [String; 8] {
    let time = |t: Option<NaiveDateTime>| t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
    [
        row.email.clone(),
        row.name.clone().unwrap_or_default(),
        row.list.clone(),
        row.status.clone(),
        time(Some(row.subscribed_at)),
        time(row.confirmed_at),
        time(row.unsubscribed_at),
        row.consent_source.clone(),
    ]
}

/// One record, quoted where CSV needs it (the csv crate's writer).
fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(fields);
    writer.into_inner().unwrap_or_default()
}
