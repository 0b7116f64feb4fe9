//! Logging set-up (`RUST_LOG` wins over the configured filter) and the
//! Prometheus metrics (`meters`).

pub mod meters;

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, the message and
    /// fields, and the spans it happened in (a request's id among them).
    Json,
}

/// The template engine logs every helper's parameters at debug level, and
/// those hold the readers' links: it never logs below `warn`.
const QUIET: &str = "handlebars=warn";

pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match QUIET.parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    // Logs go to stderr: stdout carries the CLI's reports. Colours only for
    // a terminal, never into a log file. A second init (tests) keeps the
    // first subscriber.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
}
