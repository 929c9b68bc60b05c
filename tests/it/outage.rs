//! A database outage: requests that need PostgreSQL get 503 (problem+json on the API, a page in
//! the browser), `/readyz` says 503, and service resumes by itself when the database returns.
//! The outage is a TCP proxy between the app and PostgreSQL that the test closes and reopens.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{problem, Backend, TestApp, TOKEN_COOKIE};
use rocket::http::{Accept, Cookie, Status};
use rocket::tokio::io::copy_bidirectional;
use rocket::tokio::net::{TcpSocket, TcpStream};
use rocket::tokio::task::JoinHandle;

/// A password the policy accepts (not containing the username, not easily guessed).
const PASSWORD: &str = "it comes back by itself";

/// Forwards a local port to PostgreSQL until stopped; every forwarded connection dies with it.
struct Proxy {
    port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, target: String) -> Proxy {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
        let listener = socket.listen(64).unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accepted, upstream) = (tasks.clone(), target.clone());
        let accept = rocket::tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = rocket::tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accepted.lock().unwrap().push(pipe);
            }
        });
        tasks.lock().unwrap().push(accept);
        Proxy { port, target, tasks }
    }

    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn eventually_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.client.get("/readyz").dispatch().await.status() != Status::Ok {
        assert!(Instant::now() < deadline, "MiniAuth did not recover after the database returned");
        rocket::tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

needs_postgres! {
    #[rocket::async_test]
    async fn a_database_outage_gives_503_and_service_resumes_without_a_restart() {
        let base = common::required_postgres_base_url();
        let server =
            base.split_once("://").unwrap().1.split(['/', '@']).find(|part| part.contains(':')).unwrap();
        let proxy = Proxy::start(0, server.to_owned()).await;
        let port = proxy.port;
        let app = TestApp::spawn_with(Backend::Postgres, |figment| {
            let direct: String = figment.extract_inner("database_url").unwrap();
            let proxied = direct.replacen(server, &format!("127.0.0.1:{port}"), 1);
            figment
                .merge(("database_url", &proxied))
                .merge(("databases.miniauth.url", &proxied))
                .merge(("databases.miniauth.connect_timeout", 1))
        })
        .await;
        let [tokens] = app.register_and_sign_in("outage", PASSWORD).await;
        let token = tokens.access;

        proxy.stop();
        problem(app.client.get("/readyz").dispatch().await, Status::ServiceUnavailable).await;
        let response = app.profile(&token).await;
        assert_eq!(response.headers().get_one("Retry-After"), Some("5"));
        problem(response, Status::ServiceUnavailable).await;
        problem(app.login("outage", PASSWORD).await, Status::ServiceUnavailable).await;
        let signed_in_browser = Cookie::new(TOKEN_COOKIE, token.clone());
        let page = app.client.get("/profile").header(Accept::HTML).cookie(signed_in_browser).dispatch().await;
        assert_eq!(page.status(), Status::ServiceUnavailable, "a page, not a sign-in redirect");
        assert!(page.into_string().await.unwrap().contains("<html"));

        let proxy = Proxy::start(port, proxy.target.clone()).await;
        eventually_ready(&app).await;
        assert_eq!(app.profile(&token).await.status(), Status::Ok);
        assert_eq!(app.login("outage", PASSWORD).await.status(), Status::Ok);
        proxy.stop();
    }
}
