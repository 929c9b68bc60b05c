//! Logging: MiniAuth's own lines (start-up, one per request, errors) on standard error, and
//! Rocket's chatter silenced: its guard-failure lines (logged under the handler's module,
//! hence `miniauth::routes=error`) could echo request data.

use rocket::fairing::AdHoc;

use crate::auth::TrustedProxies;

/// `RUST_LOG` overrides the default filter, e.g. `RUST_LOG=warn` to drop request lines.
const DEFAULT_FILTER: &str = "warn,rocket=off,rocket_dyn_templates=warn,miniauth=info,miniauth::routes=error";

/// The admin commands print their own answer: only warnings and errors are logged, and the
/// changes to groups and invitations they make (see [`AUDIT`]).
const COMMAND_FILTER: &str = "warn,rocket=off,miniauth::audit=info";

/// The log target of changes to who may come in (groups, invitations): one line each, never a
/// token, from the server and from the admin commands alike.
pub const AUDIT: &str = "miniauth::audit";

/// Installs the logger; call once, before Rocket starts (Rocket then keeps its own quiet).
pub fn init() {
    install(DEFAULT_FILTER);
}

/// Installs the logger of an admin command.
pub fn init_for_commands() {
    install(COMMAND_FILTER);
}

fn install(default_filter: &str) {
    let env = env_logger::Env::default().default_filter_or(default_filter);
    let _ = env_logger::Builder::from_env(env).format_timestamp_millis().try_init();
}

pub fn liftoff() -> AdHoc {
    AdHoc::on_liftoff("Start-up line", |rocket| {
        Box::pin(async move {
            let config = rocket.config();
            log::info!("MiniAuth listening on http://{}:{}", config.address, config.port);
            let proxied = rocket.state::<TrustedProxies>().is_some_and(|proxies| !proxies.is_empty());
            if !config.address.is_loopback() && !proxied {
                log::warn!(
                    "MiniAuth listens on {}, not a loopback address, with no trusted_proxies: it is exposed \
                     directly, and Rocket bounds neither connections nor slow headers; put it behind the \
                     front proxy of docs/operations.md#exposed-to-the-internet-the-front-proxy",
                    config.address
                );
            }
        })
    })
}

/// Says that shutdown began (Rocket's own line is silenced with the rest of its log).
pub fn shutdown() -> AdHoc {
    AdHoc::on_shutdown("Shutdown line", |rocket| {
        Box::pin(async move {
            log::info!(
                "MiniAuth shutting down: no new connections; the requests in flight have {} s to finish",
                rocket.config().shutdown.grace
            );
        })
    })
}
