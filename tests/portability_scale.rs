//! A million readers in and out through the CLI, with the peak resident
//! memory of each process measured: it must not grow with the file. Slow
//! (minutes in a debug build), so run on its own: `.ci/run` does, with
//! `cargo test --test portability_scale -- --ignored --nocapture`.

mod common;

use common::{Backend, TestApp, tidings_cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run alone, as .ci/run does"]
async fn a_million_rows_stream_in_flat_memory_sqlite() {
    a_million_rows_stream_in_flat_memory(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run alone, as .ci/run does"]
async fn a_million_rows_stream_in_flat_memory_postgres() {
    if common::pg_url().is_some() {
        a_million_rows_stream_in_flat_memory(Backend::Postgres).await;
    }
}

/// Peak resident memory of a process, from /proc, sampled until it exits.
async fn peak_rss_kib(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                peak = peak.max(hwm.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0));
            }
        }
        if let Some(exit) = child.try_wait().unwrap() {
            return (peak, exit);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A CSV file of `rows` readers numbered from `from`; its size in KiB.
fn write_readers(path: &std::path::Path, from: usize, rows: usize) -> u64 {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "email,name,attributes").unwrap();
    for i in from..from + rows {
        writeln!(out, "reader{i}@example.com,\"Reader {i}, Esq.\",{{}}").unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len() / 1024
}

/// Peak RSS of an import of `file`, then of an export of everything.
async fn import_then_export(app: &TestApp, file: &std::path::Path) -> (u64, u64) {
    let mut import = tidings_cli(&app.db, app.smtp.port);
    import.args(["subscribers", "import", "--list", "orthopedic"]).arg(file).stdout(std::process::Stdio::null());
    let (import_peak, exit) = peak_rss_kib(import.spawn().unwrap()).await;
    assert!(exit.success());
    let mut export = tidings_cli(&app.db, app.smtp.port);
    export.args(["subscribers", "export"]).stdout(std::process::Stdio::null());
    let (export_peak, exit) = peak_rss_kib(export.spawn().unwrap()).await;
    assert!(exit.success());
    (import_peak, export_peak)
}

/// Memory is flat when ten times the rows take about the same memory: a
/// tenth of the file first, then the rest, each imported and the whole
/// list exported after.
async fn a_million_rows_stream_in_flat_memory(backend: Backend) {
    let total: usize = std::env::var("TIDINGS_TEST_IMPORT_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let app = TestApp::spawn(backend).await;
    let dir = std::env::temp_dir().join(format!("tidings-million-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (small, rest) = (dir.join("small.csv"), dir.join("rest.csv"));
    let small_kib = write_readers(&small, 0, total / 10);
    let rest_kib = write_readers(&rest, total / 10, total - total / 10);
    let (import_small, export_small) = import_then_export(&app, &small).await;
    let (import_rest, export_all) = import_then_export(&app, &rest).await;
    assert_eq!(app.db.count("subscriptions WHERE status = 'confirmed'"), total as i64);
    eprintln!(
        "import {} rows ({small_kib} KiB): peak {import_small} KiB; {} rows ({rest_kib} KiB): peak {import_rest} KiB",
        total / 10,
        total - total / 10
    );
    eprintln!("export {} readers: peak {export_small} KiB; {total} readers: peak {export_all} KiB", total / 10);
    let slack = 16 * 1024;
    assert!(import_rest < import_small + slack, "import memory grew with the file: {import_small} → {import_rest} KiB");
    assert!(export_all < export_small + slack, "export memory grew with the list: {export_small} → {export_all} KiB");
    let _ = std::fs::remove_dir_all(dir);
}
