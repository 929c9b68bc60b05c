//! The binary alone, copied into an empty folder and started there with nothing configured,
//! serves every page and every asset the pages link; a configured folder that is missing stops
//! it with one clear line and status 1, before it writes anything.
//!
//! The binary is the one `cargo test` builds (templates and static files are built into debug
//! builds too), or the release binary when `MINIAUTH_TEST_BINARY` names it (CI does).

use crate::common;

use std::path::{Path, PathBuf};

use common::server::{Server, JSON};
use common::TOKEN_COOKIE;

fn binary() -> PathBuf {
    std::env::var_os("MINIAUTH_TEST_BINARY")
        .map_or_else(|| env!("CARGO_BIN_EXE_miniauth").into(), PathBuf::from)
}

/// A copy of the binary in a new empty folder: nothing of the repository is beside it.
fn copied_into(dir: &Path) -> PathBuf {
    let copy = dir.join("miniauth");
    std::fs::copy(binary(), &copy).expect("copy the binary");
    copy
}

/// Every `href="/…"` and `src="/…"` of a page.
fn linked(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["href=\"/", "src=\"/"] {
        for (at, _) in html.match_indices(attribute) {
            let start = at + attribute.len() - 1;
            let end = start + html[start..].find('"').expect("a closing quote");
            links.push(html[start..end].to_owned());
        }
    }
    links
}

#[test]
fn the_binary_alone_in_an_empty_folder_serves_every_page_and_asset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_binary(&copied_into(dir.path()), dir.path(), &[]);

    let credentials = r#"{"username":"newcomer","password":"a long enough password"}"#;
    assert_eq!(server.request("POST", "/auth/register", &[JSON], credentials).0, 201);
    let (status, _, body) = server.request("POST", "/auth/login", &[JSON], credentials);
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cookie = format!("{TOKEN_COOKIE}={}", token["access_token"].as_str().unwrap());

    let mut assets = Vec::new();
    let signed_out = ["/", "/register", "/login", "/no-such-page"];
    let signed_in = ["/", "/profile", "/account/password", "/account/delete"];
    for (page, headers) in signed_out
        .iter()
        .map(|p| (p, vec![]))
        .chain(signed_in.iter().map(|p| (p, vec![("Cookie", cookie.as_str())])))
    {
        let (status, head, html) = server.request("GET", page, &headers, "");
        let expected = if *page == "/no-such-page" { 404 } else { 200 };
        assert_eq!(status, expected, "GET {page}:\n{head}\n{html}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/html"), "GET {page}:\n{head}");
        assert!(html.contains("</html>"), "GET {page} is not a whole page:\n{html}");
        assets.extend(linked(&html).into_iter().filter(|link| link.starts_with("/static/")));
    }
    assets.sort();
    assets.dedup();
    assert!(
        assets.iter().any(|a| a.ends_with(".css")) && assets.iter().any(|a| a.ends_with(".svg")),
        "{assets:?}"
    );
    for asset in assets.iter().map(String::as_str).chain(["/favicon.ico", "/docs/", "/openapi.json"]) {
        let (status, head, body) = server.request("GET", asset, &[], "");
        assert_eq!(status, 200, "GET {asset}:\n{head}");
        assert!(!body.is_empty(), "GET {asset} is empty");
    }
    let (_, head, _) = server.request("GET", "/favicon.ico", &[], "");
    assert!(head.to_ascii_lowercase().contains("content-type: image/svg+xml"), "{head}");
    let log = server.stop();
    assert!(log.contains("templates: built in"), "{log}");
    assert_eq!(log.matches(" 404 ").count(), 1, "only /no-such-page is a 404:\n{log}");
}

#[test]
fn a_missing_template_folder_is_one_clear_line_and_status_1_before_anything_is_written() {
    for key in ["ROCKET_TEMPLATE_DIR", "ROCKET_STATIC_DIR"] {
        let dir = tempfile::tempdir().unwrap();
        let (status, log) =
            Server::run_to_exit(&copied_into(dir.path()), dir.path(), &[(key, "no-such-folder")]);
        assert_eq!(status, Some(1), "{key}: {log}");
        let setting = key.trim_start_matches("ROCKET_").to_ascii_lowercase();
        assert!(log.contains(&format!("{setting} no-such-folder is not a folder")), "{key}: {log}");
        assert_eq!(log.lines().count(), 1, "{key}: one line, not:\n{log}");
        let written: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(written, ["miniauth"], "{key}: the binary wrote {written:?} before checking its settings");
    }
}
