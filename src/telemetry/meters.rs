//! Prometheus metrics (`metrics` with `metrics-exporter-prometheus`): one
//! process-wide recorder, installed at start, rendered by `GET /metrics`.
//! The send path increments handles registered once, so a message costs an
//! atomic add, not a registry lookup.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds, from 1 ms to 30 s: SMTP sends and HTTP answers alike.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the recorder once per process (later calls reuse it); `None`
/// when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            gauge!("tidings_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!("tidings_signups_total", "Signups accepted (stored or re-sent a confirmation), per list");
    describe_counter!("tidings_confirmations_total", "Subscriptions confirmed, per list");
    describe_counter!("tidings_unsubscribes_total", "Subscriptions left, per list");
    describe_counter!("tidings_messages_total", "Send attempts by kind and outcome (sent, retried, failed, bounced)");
    describe_histogram!("tidings_smtp_send_seconds", "Time to hand one message to the SMTP server, by kind");
    describe_counter!("tidings_http_requests_total", "HTTP answers by route pattern, method and status");
    describe_histogram!("tidings_http_request_seconds", "Time to answer, by route pattern");
    describe_gauge!("tidings_outbox_pending", "Confirmations, welcomes and manage links waiting to be sent");
    describe_gauge!("tidings_deliveries_pending", "Digest messages waiting to be sent");
    describe_gauge!("tidings_db_connections", "Database connections by state (in_use, idle, waiting)");
    describe_gauge!("tidings_build_info", "1, labelled with the version");
}

/// The text Prometheus scrapes, or `None` without a recorder.
pub fn render() -> Option<String> {
    install().map(PrometheusHandle::render)
}

pub fn signup(list: &str) {
    counter!("tidings_signups_total", "list" => list.to_owned()).increment(1);
}

pub fn confirmed(list: &str) {
    counter!("tidings_confirmations_total", "list" => list.to_owned()).increment(1);
}

pub fn unsubscribed(list: &str) {
    counter!("tidings_unsubscribes_total", "list" => list.to_owned()).increment(1);
}

pub fn http(route: &str, method: &str, status: u16, took: Duration) {
    counter!("tidings_http_requests_total", "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string())
        .increment(1);
    histogram!("tidings_http_request_seconds", "route" => route.to_owned()).record(took.as_secs_f64());
}

pub fn queues(outbox: i64, deliveries: i64) {
    gauge!("tidings_outbox_pending").set(outbox as f64);
    gauge!("tidings_deliveries_pending").set(deliveries as f64);
}

pub fn pool(in_use: u32, idle: u32, waiting: u64) {
    gauge!("tidings_db_connections", "state" => "in_use").set(f64::from(in_use));
    gauge!("tidings_db_connections", "state" => "idle").set(f64::from(idle));
    gauge!("tidings_db_connections", "state" => "waiting").set(waiting as f64);
}

/// How a send attempt ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Retried,
    Failed,
    Bounced,
}

/// The counters and the latency histogram of one kind of message,
/// registered once.
#[derive(Clone)]
pub struct SendMeters {
    sent: Counter,
    retried: Counter,
    failed: Counter,
    bounced: Counter,
    latency: Histogram,
}

impl SendMeters {
    /// `kind`: `confirmation`, `welcome`, `manage` or `digest`.
    pub fn new(kind: &'static str) -> Self {
        install();
        let outcome = |o: &'static str| counter!("tidings_messages_total", "kind" => kind, "outcome" => o);
        Self {
            sent: outcome("sent"),
            retried: outcome("retried"),
            failed: outcome("failed"),
            bounced: outcome("bounced"),
            latency: histogram!("tidings_smtp_send_seconds", "kind" => kind),
        }
    }

    /// An attempt's outcome, and how long the SMTP send took (`None` when
    /// the message could not even be built).
    pub fn record(&self, outcome: Outcome, took: Option<Duration>) {
        if let Some(took) = took {
            self.latency.record(took.as_secs_f64());
        }
        match outcome {
            Outcome::Sent => &self.sent,
            Outcome::Retried => &self.retried,
            Outcome::Failed => &self.failed,
            Outcome::Bounced => &self.bounced,
        }
        .increment(1);
    }
}
