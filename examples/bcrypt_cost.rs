//! Times one bcrypt verification at a cost (default 12), for the benchmark's login bound:
//! `cargo run --release --example bcrypt_cost -- 12` prints the median in milliseconds.

fn main() {
    let cost: u32 = std::env::args().nth(1).and_then(|arg| arg.parse().ok()).unwrap_or(12);
    let hash = bcrypt::hash("benchmark password", cost).expect("bcrypt hashes");
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let started = std::time::Instant::now();
            assert!(bcrypt::verify("benchmark password", &hash).expect("bcrypt verifies"));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!("{:.1}", samples[samples.len() / 2]);
}
