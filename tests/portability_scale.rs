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

async fn a_million_rows_stream_in_flat_memory(backend: Backend) {
    let rows: usize = std::env::var("TIDINGS_TEST_IMPORT_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let app = TestApp::spawn(backend).await;
    let file = std::env::temp_dir().join(format!("tidings-million-{}.csv", uuid::Uuid::new_v4()));
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(out, "email,name,attributes").unwrap();
        for i in 0..rows {
            writeln!(out, "reader{i}@example.com,\"Reader {i}, Esq.\",{{}}").unwrap();
        }
    }
    let size_kib = std::fs::metadata(&file).unwrap().len() / 1024;
    let mut import = tidings_cli(&app.db, app.smtp.port);
    import.args(["subscribers", "import", "--list", "orthopedic"]).arg(&file);
    let child = import.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (peak, exit) = peak_rss_kib(child).await;
    assert!(exit.success());
    assert_eq!(app.db.count("subscriptions WHERE status = 'confirmed'"), rows as i64);
    // The whole file is many times this: memory does not grow with it.
    eprintln!("imported {rows} rows ({size_kib} KiB) at a peak of {peak} KiB");
    assert!(peak < 64 * 1024 && peak < size_kib, "peak RSS {peak} KiB for a {size_kib} KiB file");

    let mut export = tidings_cli(&app.db, app.smtp.port);
    export.args(["subscribers", "export"]).stdout(std::process::Stdio::null());
    let (peak, exit) = peak_rss_kib(export.spawn().unwrap()).await;
    assert!(exit.success());
    eprintln!("exported {rows} rows at a peak of {peak} KiB");
    assert!(peak < 64 * 1024, "export peak RSS {peak} KiB");
    let _ = std::fs::remove_file(file);
}
