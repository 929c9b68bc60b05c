//! Acknowledged writes survive `kill -9`: eight clients register users as fast as they can, the
//! server is killed mid-stream, and after a restart every user that got a 201 can sign in and
//! SQLite's integrity check says `ok`.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server::{Server, JSON};
use common::{Backend, TestDatabase};
use sqlx::Connection;

fn credentials(name: &str) -> String {
    format!(r#"{{"username":"{name}","password":"quiet lantern trombone"}}"#)
}

#[test]
fn every_acknowledged_registration_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(Backend::Sqlite);
    // Hundreds of sign-ups from this machine: the per-address sign-up limit is off.
    let env = [database.env(), ("ROCKET_REGISTER_MAX_PER_ADDRESS_HOUR", "0")];
    let server = Server::start(dir.path(), &env);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicBool::new(true));
    let port = server.port;
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (acknowledged, running) = (acknowledged.clone(), running.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if !running.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("crash{client}x{n}");
                    // After the kill, connections fail: that request was never acknowledged.
                    match Server::request_to(port, "POST", "/auth/register", &[JSON], &credentials(&name)) {
                        Some((201, _, _)) => acknowledged.lock().unwrap().push(name),
                        Some((status, _, body)) => panic!("registration answered {status}: {body}"),
                        None => break,
                    }
                }
            })
        })
        .collect();
    // Until 200 are acknowledged, or every client has stopped (a failure, reported by `join`).
    while acknowledged.lock().unwrap().len() < 200 && !clients.iter().all(|c| c.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.crash();
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let server = Server::start(dir.path(), &env);
    let acknowledged = acknowledged.lock().unwrap().clone();
    for name in &acknowledged {
        let (status, _, _) = server.request("POST", "/auth/login", &[JSON], &credentials(name));
        assert_eq!(status, 200, "{name} got 201 before the crash but is gone");
    }
    server.stop();

    let integrity: String = rocket::tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&database.url).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.unwrap()
    });
    assert_eq!(integrity, "ok");
    eprintln!("{} acknowledged registrations all survived", acknowledged.len());
}
