//! How long the password strength estimator (zxcvbn) takes on the worst inputs a client can
//! send: it runs on every sign-up and password change, on the request's own task, so its cost
//! must stay small. Inputs are at most 72 bytes (longer ones are refused before it runs).
//!
//! `cargo run --release --example password_strength`

use std::time::{Duration, Instant};

fn main() {
    let words = "password dragon monkey letmein football iloveyou admin welcome";
    let inputs: Vec<(&str, String)> = vec![
        ("one letter repeated", "a".repeat(72)),
        ("two letters alternating", "ab".repeat(36)),
        ("digits ascending", "0123456789".repeat(8)[..72].to_owned()),
        ("keyboard rows", "qwertyuiopasdfghjklzxcvbnm".repeat(3)[..72].to_owned()),
        ("common words joined", words.replace(' ', "")[..words.replace(' ', "").len().min(72)].to_owned()),
        ("dates", "19701231".repeat(9)),
        ("leet dictionary", "p@55w0rd".repeat(9)),
        ("mixed repeats", "aaab".repeat(18)),
        ("years", "2026".repeat(18)),
        ("random-looking", "x7$Kq9!mZ2@pL4#vB8&nR1*tW6^yH3%jF5(cD0)gS".repeat(2)[..72].to_owned()),
        ("spaced words", "correct horse battery staple ".repeat(3)[..72].to_owned()),
        ("l33t symbols only", "4@8(6<1!|0$5+7%2".repeat(5)[..72].to_owned()),
        ("l33t words", "p4$$w0rd!l3tm31n@dm1n".repeat(4)[..72].to_owned()),
        ("l33t alternating", "a@e3i!o0s$t+".repeat(6)),
    ];
    let before = resident();
    let mut worst = (Duration::ZERO, "");
    println!("{:<26} {:>10} {:>6}", "input (72 bytes)", "time", "score");
    for (name, input) in &inputs {
        assert!(input.len() <= 72, "{name}");
        let mut best = Duration::MAX;
        let mut score = 0u8;
        for _ in 0..5 {
            let started = Instant::now();
            score = zxcvbn::zxcvbn(input, &["someuser"]).score().into();
            best = best.min(started.elapsed());
        }
        println!("{name:<26} {:>8.2}ms {score:>6}", best.as_secs_f64() * 1000.0);
        if best > worst.0 {
            worst = (best, name);
        }
    }
    println!("worst: {} ({:.2} ms)", worst.1, worst.0.as_secs_f64() * 1000.0);
    println!("resident memory: {} before the first estimate, {} after all", before, resident());
}

/// This process's resident memory (`VmRSS`), as Linux reports it.
fn resident() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or("VmRSS: ?");
    line.trim_start_matches("VmRSS:").trim().to_owned()
}
