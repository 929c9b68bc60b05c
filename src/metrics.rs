//! What an operator's Prometheus scrapes from `GET /metrics`: requests and their latency by
//! route and status, sign-ins by outcome, sign-ups, refreshes and detected reuse, mails, the
//! database pool and the password workers' queue, and the process's own memory, open files and
//! CPU. Built on the `prometheus` crate. One set per server (tests run several in one process),
//! cheap to clone. Labels are route templates and fixed words: never a raw path, never a user.

use std::sync::Arc;
use std::time::Duration;

use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds: from a cached session check (under a millisecond) to a
/// password hash waiting behind a storm of them.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone)]
pub struct Metrics(Arc<Series>);

struct Series {
    registry: Registry,
    requests: HistogramVec,
    sign_ins: IntCounterVec,
    sign_ups: IntCounter,
    refreshes: IntCounterVec,
    refresh_reuse: IntCounter,
    mails: IntCounterVec,
    database_errors: IntCounter,
    db_connections: IntGaugeVec,
    hash_queue: IntGauge,
}

/// How a sign-in attempt ended (a password's, a second step's, a passkey's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    /// A session was opened.
    Success,
    /// Unknown user or wrong password.
    WrongPassword,
    /// Refused by throttling before anything was checked (`429`).
    Throttled,
    /// The password was right; the second step is asked for.
    SecondFactorAsked,
    /// A second step's code or passkey was refused.
    SecondFactorFailed,
    /// A passkey sign-in (without a password) was refused.
    PasskeyRefused,
}

impl SignInOutcome {
    const ALL: [SignInOutcome; 6] = [
        SignInOutcome::Success,
        SignInOutcome::WrongPassword,
        SignInOutcome::Throttled,
        SignInOutcome::SecondFactorAsked,
        SignInOutcome::SecondFactorFailed,
        SignInOutcome::PasskeyRefused,
    ];

    fn label(self) -> &'static str {
        match self {
            SignInOutcome::Success => "success",
            SignInOutcome::WrongPassword => "wrong_password",
            SignInOutcome::Throttled => "throttled",
            SignInOutcome::SecondFactorAsked => "second_factor_asked",
            SignInOutcome::SecondFactorFailed => "second_factor_failed",
            SignInOutcome::PasskeyRefused => "passkey_refused",
        }
    }
}

/// What the scrape reads at its moment: the database pool and the password workers' queue.
pub struct Gauges {
    pub connections: u32,
    pub idle_connections: usize,
    pub hash_queue: usize,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "miniauth_http_request_duration_seconds",
                "Requests answered, by route (its template, \"unmatched\" when none) and status, and how long they took",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route", "status"],
        );
        let sign_ins = IntCounterVec::new(
            Opts::new("miniauth_sign_ins_total", "Sign-in attempts by outcome"),
            &["outcome"],
        );
        let sign_ups = IntCounter::new("miniauth_sign_ups_total", "Accounts created");
        let refreshes = IntCounterVec::new(
            Opts::new(
                "miniauth_refreshes_total",
                "Refresh-token exchanges (sessions' and apps'), by outcome: renewed or refused",
            ),
            &["outcome"],
        );
        let refresh_reuse = IntCounter::new(
            "miniauth_refresh_reuse_total",
            "Refresh tokens presented again after rotation (taken for theft: their session or grant is revoked)",
        );
        let mails = IntCounterVec::new(Opts::new("miniauth_mails_total", "Mails by outcome"), &["outcome"]);
        let database_errors = IntCounter::new(
            "miniauth_database_errors_total",
            "Requests that failed because the database could not be reached or failed",
        );
        let db_connections = IntGaugeVec::new(
            Opts::new("miniauth_db_connections", "Connections of the database pool, in use or idle"),
            &["state"],
        );
        let hash_queue = IntGauge::new(
            "miniauth_hash_queue",
            "Password jobs (bcrypt, strength checks) waiting for a worker",
        );
        let series = (|| {
            let (requests, sign_ins, refreshes, mails) = (requests?, sign_ins?, refreshes?, mails?);
            let (sign_ups, refresh_reuse, database_errors) = (sign_ups?, refresh_reuse?, database_errors?);
            let (db_connections, hash_queue) = (db_connections?, hash_queue?);
            registry.register(Box::new(requests.clone()))?;
            registry.register(Box::new(sign_ins.clone()))?;
            registry.register(Box::new(sign_ups.clone()))?;
            registry.register(Box::new(refreshes.clone()))?;
            registry.register(Box::new(refresh_reuse.clone()))?;
            registry.register(Box::new(mails.clone()))?;
            registry.register(Box::new(database_errors.clone()))?;
            registry.register(Box::new(db_connections.clone()))?;
            registry.register(Box::new(hash_queue.clone()))?;
            registry.register(Box::new(ProcessCollector::for_self()))?;
            // Every outcome is there from the start, at zero: a rate is never "no data".
            for outcome in SignInOutcome::ALL {
                sign_ins.with_label_values(&[outcome.label()]);
            }
            for outcome in ["renewed", "refused"] {
                refreshes.with_label_values(&[outcome]);
            }
            for outcome in ["sent", "failed"] {
                mails.with_label_values(&[outcome]);
            }
            prometheus::Result::Ok(Series {
                registry: registry.clone(),
                requests,
                sign_ins,
                sign_ups,
                refreshes,
                refresh_reuse,
                mails,
                database_errors,
                db_connections,
                hash_queue,
            })
        })();
        Metrics(Arc::new(series.expect("the metrics' names and labels are valid and registered once")))
    }

    /// One request answered.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let status = status_label(status);
        self.0.requests.with_label_values(&[method, route, &status]).observe(took.as_secs_f64());
    }

    pub fn sign_in(&self, outcome: SignInOutcome) {
        self.0.sign_ins.with_label_values(&[outcome.label()]).inc();
    }

    pub fn sign_up(&self) {
        self.0.sign_ups.inc();
    }

    /// A refresh token exchanged (`renewed`), or refused.
    pub fn refresh(&self, renewed: bool) {
        self.0.refreshes.with_label_values(&[if renewed { "renewed" } else { "refused" }]).inc();
    }

    /// A refresh token presented again after rotation (it is also refused).
    pub fn refresh_reuse(&self) {
        self.0.refresh_reuse.inc();
    }

    pub fn mail(&self, sent: bool) {
        self.0.mails.with_label_values(&[if sent { "sent" } else { "failed" }]).inc();
    }

    pub fn database_error(&self) {
        self.0.database_errors.inc();
    }

    /// Every series, in the text format, with the gauges read now.
    pub fn render(&self, gauges: Gauges) -> String {
        let in_use = gauges.connections as i64 - gauges.idle_connections as i64;
        self.0.db_connections.with_label_values(&["in_use"]).set(in_use.max(0));
        self.0.db_connections.with_label_values(&["idle"]).set(gauges.idle_connections as i64);
        self.0.hash_queue.set(gauges.hash_queue as i64);
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut text) {
            log::error!("metrics: {e}");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A status code as its label, without an allocation for the usual ones.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    const USUAL: [(u16, &str); 16] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (302, "302"),
        (303, "303"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (409, "409"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    match USUAL.iter().find(|(code, _)| *code == status) {
        Some((_, label)) => (*label).into(),
        None => status.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_series_with_its_labels() {
        let metrics = Metrics::new();
        metrics.request("GET", "/auth/profile", 200, Duration::from_millis(2));
        metrics.request("GET", "/auth/profile", 200, Duration::from_millis(3));
        metrics.request("POST", "/auth/login", 418, Duration::from_millis(300));
        metrics.sign_in(SignInOutcome::WrongPassword);
        metrics.refresh(false);
        metrics.refresh_reuse();
        metrics.mail(false);
        let text = metrics.render(Gauges { connections: 3, idle_connections: 1, hash_queue: 7 });
        for line in [
            r#"miniauth_http_request_duration_seconds_count{method="GET",route="/auth/profile",status="200"} 2"#,
            r#"miniauth_http_request_duration_seconds_count{method="POST",route="/auth/login",status="418"} 1"#,
            r#"miniauth_sign_ins_total{outcome="wrong_password"} 1"#,
            r#"miniauth_sign_ins_total{outcome="success"} 0"#,
            r#"miniauth_refreshes_total{outcome="refused"} 1"#,
            r#"miniauth_refreshes_total{outcome="renewed"} 0"#,
            "miniauth_refresh_reuse_total 1",
            r#"miniauth_mails_total{outcome="failed"} 1"#,
            r#"miniauth_db_connections{state="in_use"} 2"#,
            r#"miniauth_db_connections{state="idle"} 1"#,
            "miniauth_hash_queue 7",
            "miniauth_sign_ups_total 0",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(line), "{line} is not in\n{text}");
        }
    }
}
