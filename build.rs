// Migrations (`sqlx::migrate!`), templates and static files (rust-embed) are built into the
// binary; rebuild when they change.
fn main() {
    for folder in ["migrations", "templates", "static"] {
        println!("cargo:rerun-if-changed={folder}");
    }
}
