//! What the metrics cost a request: the one observation every answered request makes (its
//! route's latency histogram, found by method, route template and status), from one thread and
//! from two at once (the server's workers share the series), and what a scrape costs. The
//! benchmark (`bench/bench.py`) measures whole requests; this measures the metrics alone.
//!
//! `cargo run --release --example metrics_cost`

use std::time::{Duration, Instant};

use miniauth::metrics::{Gauges, Metrics};

const ROUNDS: u32 = 2_000_000;

/// Nanoseconds per observation, `threads` observing at once.
fn observe(metrics: &Metrics, threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for n in 0..ROUNDS {
                    metrics.request("GET", "/auth/profile", 200, Duration::from_nanos(u64::from(n % 4096)));
                }
            });
        }
    });
    started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

fn main() {
    let metrics = Metrics::new();
    // Other routes and statuses in the series, as a server that ran a while has them.
    for route in ["/auth/login", "/auth/refresh", "/authz/auth-request", "/login", "/profile", "unmatched"] {
        for status in [200, 302, 401, 404, 429] {
            metrics.request("POST", route, status, Duration::from_millis(1));
        }
    }
    println!("one request's observation, 1 thread:  {:.0} ns", observe(&metrics, 1));
    println!("one request's observation, 2 threads: {:.0} ns (wall time per round)", observe(&metrics, 2));
    let started = Instant::now();
    let text = metrics.render(Gauges { connections: 4, idle_connections: 3, hash_queue: 0 });
    println!("one scrape: {:.0} µs, {} bytes", started.elapsed().as_secs_f64() * 1e6, text.len());
}
