//! The command line: `miniauth` serves, and its subcommands administer, reading the
//! same configuration as the server (`Rocket.toml`, `ROCKET_*`, the working directory's
//! `data/`). They work while servers run: every server checks users and sessions in the
//! database on each request, so what a command deletes or revokes is refused at once.
//!
//! Exit status: 0 on success; 1 with one line on standard error when the command fails; 2 on
//! bad usage (clap's).

use std::io::Read;
use std::net::IpAddr;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::auth::invitations;
use crate::auth::keys::{self, RotateRefused, RELOAD_EVERY};
use crate::auth::{oidc, ClientAddress, PasswordHasher, Registration, SigningAlgorithm, TokenSettings};
use crate::config::{self, Settings, DATABASE};
use crate::domain::{NewAccount, PasswordReset, TypedPassword, Username};
use crate::error::Error;
use crate::routes::rfc3339;
use crate::store::invitations::Standing;
use crate::store::{self, DbPool, Event, EventKind, Store};

#[derive(Parser)]
#[command(
    name = "miniauth",
    version,
    about = "MiniAuth: username + password authentication. Without a command, it serves."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the pages and the API (what `miniauth` alone does)
    Serve,
    /// Create, list, delete users; set a password; revoke sessions
    #[command(subcommand)]
    User(UserCommand),
    /// List and rotate the keys that sign access tokens
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List and clear the counters and blocks of sign-in throttling
    #[command(subcommand)]
    Throttle(ThrottleCommand),
    /// Make, list and revoke one-time sign-up links (for registration = "invite")
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Create, list and delete groups; put users in them and take them out
    #[command(subcommand)]
    Group(GroupCommand),
    /// Register, list and delete the apps that sign their users in with MiniAuth (OpenID Connect)
    #[command(subcommand)]
    Client(ClientCommand),
    /// Apply the database migrations (servers do it at start too)
    Migrate,
    /// Show the security events (sign-ins, failures, changes to accounts, administrator
    /// commands), oldest first
    Events {
        /// Only the events of this name: its account's (a deleted one's too) and sign-ins that
        /// typed it
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only the events of this last while, e.g. 30m, 24h, 7d [default: all that are kept]
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// At most this many, the newest
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: u32,
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete ended sessions, spent refresh tokens, spent counters and spent invitations now
    Purge,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input and passes the sign-up rules
    Create {
        name: String,
        /// Read the password from standard input (required: never from the arguments)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a user's password (read from standard input) and revoke all their sessions and app
    /// tokens
    SetPassword {
        name: String,
        /// Read the password from standard input (required: never from the arguments)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the users with their live sessions
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a user, with their sessions
    Delete { name: String },
    /// Revoke every session of a user (signs them out everywhere) and every app's tokens of them
    RevokeSessions { name: String },
    /// Remove a user's second factors (a lost phone or security key): the app's secret, the
    /// passkeys and the recovery codes go, and every session of the user ends
    ResetSecondFactor {
        name: String,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum InviteCommand {
    /// Make a one-time link to the sign-up page; the account it makes joins the groups given
    Create {
        /// A group the new account joins (repeat for more; each must exist)
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
        /// How long the link works, e.g. 30m, 12h, 7d [default: 7d]
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// One JSON object (id, token, link, expires_at, groups) instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the invitations, newest first, with where each stands (never their links)
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke an invitation not used yet, by its id
    Revoke { id: i64 },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group (its name follows the username rule)
    Create { name: String },
    /// Delete a group: its members leave it, invitations stop putting anyone in it
    Delete { name: String },
    /// List the groups with their members
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Put a user in a group (it takes effect at their next request)
    Add { group: String, user: String },
    /// Take a user out of a group (it takes effect at their next request)
    Remove { group: String, user: String },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register an app; prints its client_id and, unless --public, its client_secret (shown
    /// once, stored hashed)
    Create {
        /// The app's name, as the consent page and the profile show it
        name: String,
        /// An address the app may be sent back to, matched exactly (https, or http on
        /// localhost; repeat for more)
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// Where signing out from the app (RP-initiated logout) may send the browser back to
        /// (repeat for more)
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        logout_uris: Vec<String>,
        /// A public app (in a browser or on a device): no secret, its codes bound by PKCE alone
        #[arg(long)]
        public: bool,
        /// How its ID tokens are signed
        #[arg(long = "id-token-alg", value_name = "ALG", default_value = "RS256", value_parser = ["RS256", "EdDSA"])]
        id_token_alg: String,
        /// One JSON object ({"client_id", "client_secret"}) instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the registered apps (never their secrets)
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete an app, by its client_id: its consents, codes and tokens go with it
    Delete { client_id: String },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the signing keys (access tokens' and ID tokens') and the part each plays
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Make the published next key sign, retire the current one, publish a new next key
    Rotate {
        /// Rotate even if verifiers may not have fetched the next key yet
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum ThrottleCommand {
    /// List the counters in force, blocks first
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Clear the counters and blocks of a username or an address, or all of them
    Clear {
        /// A username (any case) or an address (an IPv6 address clears its /64)
        name_or_address: Option<String>,
    },
}

/// What a command needs: the settings and the database.
struct Admin {
    settings: Settings,
    db: DbPool,
}

/// Runs an admin command (anything but `serve`); `Err` is the one line to print.
pub async fn run(command: Command) -> Result<(), String> {
    let admin = Admin::open().await?;
    let result = match command {
        Command::Serve => Err("`serve` is not an admin command".into()),
        Command::User(command) => admin.user(command).await,
        Command::Keys(command) => admin.keys(command).await,
        Command::Throttle(command) => admin.throttle(command).await,
        Command::Invite(command) => admin.invite(command).await,
        Command::Group(command) => admin.group(command).await,
        Command::Client(command) => admin.client(command).await,
        Command::Migrate => Ok(()),
        Command::Purge => admin.purge().await,
        Command::Events { user, since, limit, json } => admin.events(user, since, limit, json).await,
    };
    admin.pool().close().await;
    result
}

impl Admin {
    /// Reads the configuration, opens the database and brings its schema up to date.
    async fn open() -> Result<Admin, String> {
        let figment = config::with_database_url(config::figment());
        let settings = config::load(&figment)?;
        let db = DbPool::open(&figment.focus(&format!("databases.{DATABASE}")))
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?;
        let applied = db
            .migrate()
            .await
            .map_err(|e| format!("cannot use the database ({}, {}): {e}", db.backend, db.location()))?;
        log::info!("database: {} ({}), {applied} migrations applied", db.backend, db.location());
        Ok(Admin { settings, db })
    }

    fn pool(&self) -> &Store {
        &self.db
    }

    async fn user(&self, command: UserCommand) -> Result<(), String> {
        let policy = self.settings.password_policy;
        match command {
            UserCommand::Create { name, .. } => {
                let (username, password) = (name.clone(), read_password()?);
                let parse = move || NewAccount::parse(&username, &password, &policy);
                let (account, hash) =
                    self.hasher().await?.choose(parse, async |_| Ok(())).await.map_err(refusal)?;
                let event = Event::command("user create");
                let user =
                    store::users::insert_user(self.pool(), &account.username, &hash, store::now(), event)
                        .await
                        .map_err(|e| match e {
                            Error::UsernameTaken => format!("the username {name:?} is already taken"),
                            e => failure(e),
                        })?;
                println!("created user {} (id {})", user.username, user.id);
            }
            UserCommand::SetPassword { name, .. } => {
                let user = self.find(&name).await?;
                let (username, password) = (user.username.clone(), read_password()?);
                let parse = move || PasswordReset::parse(&username, &password, &policy);
                let (_, hash) =
                    self.hasher().await?.choose(parse, async |_| Ok(())).await.map_err(refusal)?;
                let event = about("user set-password", &user);
                store::users::set_password_hash(self.pool(), user.id, &hash, event).await.map_err(failure)?;
                let revoked = self.cut_off(&user, ended_by_administrator(&user)).await?;
                println!("set the password of {}; revoked {revoked}", user.username);
            }
            UserCommand::List { json } => {
                let users = store::users::list_users(self.pool(), store::now()).await.map_err(failure)?;
                let rows: Vec<Value> = users
                    .iter()
                    .map(|store::users::Listed { user, sessions }| {
                        let second_factors = user.second_factors();
                        json!({"id": user.id, "username": user.username, "email": user.email,
                               "email_confirmed": user.email_confirmed, "groups": user.groups,
                               "second_factors": second_factors,
                               "recovery_codes_left": user.recovery_codes_left,
                               "created_at": rfc3339(user.created_at), "sessions": sessions})
                    })
                    .collect();
                let columns =
                    ["id", "username", "email", "groups", "second_factors", "created_at", "sessions"];
                print_rows(json, &rows, &columns);
            }
            UserCommand::Delete { name } => {
                let user = self.find(&name).await?;
                let event = about("user delete", &user);
                store::users::delete_user(self.pool(), user.id, event).await.map_err(failure)?;
                println!("deleted user {}", user.username);
            }
            UserCommand::ResetSecondFactor { name, json } => {
                let user = self.find(&name).await?;
                let event = about("user reset-second-factor", &user);
                let removed =
                    store::second_factor::remove_all(self.pool(), user.id, event).await.map_err(failure)?;
                let (revoked, grants) =
                    self.sign_out_everywhere(&user, ended_by_administrator(&user)).await?;
                log::info!(target: crate::logging::AUDIT, "second factor of {} reset, {revoked} sessions revoked", user.username);
                let apps = match grants {
                    0 => String::new(),
                    grants => format!(" and {grants} app grants"),
                };
                if json {
                    println!(
                        "{}",
                        json!({"username": user.username, "second_factor_removed": removed, "sessions_revoked": revoked,
                               "app_grants_revoked": grants})
                    );
                } else if removed {
                    println!(
                        "removed the second factors of {}; revoked {revoked} sessions{apps}",
                        user.username
                    );
                } else {
                    println!("{} had no second factor; revoked {revoked} sessions{apps}", user.username);
                }
            }
            UserCommand::RevokeSessions { name } => {
                let user = self.find(&name).await?;
                let revoked = self.cut_off(&user, about("user revoke-sessions", &user)).await?;
                println!("revoked {revoked} of {}", user.username);
            }
        }
        Ok(())
    }

    /// Signs a user out everywhere and revokes what every app holds of them: "N sessions", and
    /// ", M app grants" when there were any.
    async fn cut_off(&self, user: &crate::domain::User, event: Event) -> Result<String, String> {
        let (sessions, grants) = self.sign_out_everywhere(user, event).await?;
        Ok(match grants {
            0 => format!("{sessions} sessions"),
            grants => format!("{sessions} sessions and {grants} app grants"),
        })
    }

    /// Revokes what every app holds of the user, then every session, recorded as `event` (with
    /// the count of app grants): how many sessions, and how many app grants.
    async fn sign_out_everywhere(
        &self,
        user: &crate::domain::User,
        event: Event,
    ) -> Result<(u64, u64), String> {
        let now = store::now();
        let grants = store::oauth::revoke_user_grants(self.pool(), user.id, now).await.map_err(failure)?;
        let event = event.with("app_grants", grants);
        let sessions =
            store::sessions::sign_out_everywhere(self.pool(), user.id, now, event).await.map_err(failure)?;
        Ok((sessions, grants))
    }

    async fn find(&self, name: &str) -> Result<crate::domain::User, String> {
        store::users::find_user(self.pool(), name)
            .await
            .map_err(failure)?
            .ok_or_else(|| format!("there is no user named {name:?}"))
    }

    async fn hasher(&self) -> Result<PasswordHasher, String> {
        PasswordHasher::new(self.settings.hashing.cost, 1).await.map_err(failure)
    }

    async fn keys(&self, command: KeysCommand) -> Result<(), String> {
        let algorithms = keys::in_database(&self.settings.tokens);
        match command {
            KeysCommand::List { json } => {
                let mut rows = Vec::new();
                for algorithm in algorithms {
                    let keys = store::keys::all(self.pool(), algorithm.name()).await.map_err(failure)?;
                    rows.extend(keys.iter().map(|key| {
                        json!({"kid": key.kid, "algorithm": key.algorithm, "role": key.role().as_str(),
                               "signs": signs(algorithm, &self.settings.tokens),
                               "created_at": rfc3339(key.created_at),
                               "activated_at": key.activated_at.map(rfc3339),
                               "retired_at": key.retired_at.map(rfc3339)})
                    }));
                }
                print_rows(
                    json,
                    &rows,
                    &["kid", "algorithm", "role", "signs", "created_at", "activated_at", "retired_at"],
                );
                if let (false, Some((setting, _))) = (json, &self.settings.tokens.configured_key) {
                    println!("(access tokens are signed by the key of {setting}, which is not listed here)");
                }
            }
            KeysCommand::Rotate { force } => {
                let cache = self.settings.tokens.jwks_cache.as_secs();
                let configured = &self.settings.tokens.configured_key;
                let mut rotatable = Vec::new();
                for algorithm in algorithms {
                    // The ID tokens' keys are made at their first use: nothing to rotate before.
                    let access = algorithm == self.settings.tokens.algorithm && configured.is_none();
                    if access
                        || !store::keys::all(self.pool(), algorithm.name()).await.map_err(failure)?.is_empty()
                    {
                        rotatable.push(algorithm);
                    }
                }
                if let (true, Some((setting, _))) = (rotatable.is_empty(), configured) {
                    return Err(format!(
                        "the signing key comes from the configuration ({setting}): list and rotate it there"
                    ));
                }
                for algorithm in rotatable {
                    let event = Event::command("keys rotate").with("force", force);
                    match keys::rotate(self.pool(), algorithm, &self.settings.tokens, force, event).await {
                        Ok(kid) => println!(
                            "rotated {}: key {kid} signs now; running servers follow within {} seconds",
                            algorithm.name(),
                            RELOAD_EVERY.as_secs()
                        ),
                        Err(RotateRefused::TooSoon { age, wait }) => {
                            return Err(format!(
                                "the next {} key was published {age} s ago and verifiers may cache the key set for \
                                 {cache} s: rotate in {wait} s, or now with --force (verifiers holding an older key set will \
                                 refuse new tokens until they fetch it again)",
                                algorithm.name()
                            ))
                        }
                        Err(RotateRefused::Failed(e)) => return Err(failure(e)),
                    }
                }
                if let Some((setting, _)) = configured {
                    println!(
                        "access tokens: their key comes from the configuration ({setting}): rotate it there"
                    );
                }
            }
        }
        Ok(())
    }

    async fn client(&self, command: ClientCommand) -> Result<(), String> {
        match command {
            ClientCommand::Create { name, redirect_uris, logout_uris, public, id_token_alg, json } => {
                let id_token_alg = match id_token_alg.as_str() {
                    "EdDSA" => SigningAlgorithm::EdDSA,
                    _ => SigningAlgorithm::RS256,
                };
                let new = oidc::NewClient {
                    name: &name,
                    redirect_uris: &redirect_uris,
                    logout_uris: &logout_uris,
                    public,
                    id_token_alg,
                };
                let registered = oidc::register(self.pool(), new, Event::command("client create"))
                    .await
                    .map_err(refusal)?;
                let client = &registered.client;
                log::info!(target: crate::logging::AUDIT, "client {} ({}) registered", client.id, client.name);
                if json {
                    println!("{}", json!({"client_id": client.id, "client_secret": registered.secret}));
                    return Ok(());
                }
                println!("registered {} ({})", client.name, if public { "public" } else { "confidential" });
                println!("client_id:     {}", client.id);
                if let Some(secret) = &registered.secret {
                    println!("client_secret: {secret}");
                    println!("(the secret is shown this once: put it in the app's settings now)");
                }
            }
            ClientCommand::List { json } => {
                let clients = store::oauth::list_clients(self.pool()).await.map_err(failure)?;
                let rows: Vec<Value> = clients
                    .iter()
                    .map(|client| {
                        let kind = if client.secret_hash.is_empty() { "public" } else { "confidential" };
                        json!({"client_id": client.id, "name": client.name, "type": kind,
                               "redirect_uris": client.redirect_uris,
                               "post_logout_redirect_uris": client.logout_uris,
                               "id_token_alg": client.id_token_alg,
                               "created_at": rfc3339(client.created_at)})
                    })
                    .collect();
                print_rows(
                    json,
                    &rows,
                    &["client_id", "name", "type", "redirect_uris", "id_token_alg", "created_at"],
                );
            }
            ClientCommand::Delete { client_id } => {
                let event = Event::command("client delete").with("client_id", client_id.trim());
                if !store::oauth::delete_client(self.pool(), client_id.trim(), event)
                    .await
                    .map_err(failure)?
                {
                    return Err(format!("there is no client {client_id:?}"));
                }
                log::info!(target: crate::logging::AUDIT, "client {client_id} deleted, with its consents and tokens");
                println!("deleted client {client_id}");
            }
        }
        Ok(())
    }

    async fn throttle(&self, command: ThrottleCommand) -> Result<(), String> {
        match command {
            ThrottleCommand::List { json } => {
                let now = store::now();
                let entries = store::throttle::list(self.pool(), now).await.map_err(failure)?;
                let rows: Vec<Value> = entries
                    .iter()
                    .map(|entry| {
                        let blocked = (entry.blocked_until > now).then(|| rfc3339(entry.blocked_until));
                        json!({"kind": entry.kind, "username": entry.username, "address": entry.address,
                               "count": entry.count, "since": rfc3339(entry.window_start), "blocked_until": blocked})
                    })
                    .collect();
                print_rows(json, &rows, &["kind", "username", "address", "count", "since", "blocked_until"]);
            }
            ThrottleCommand::Clear { name_or_address } => {
                let target = name_or_address.as_deref().map(str::trim);
                let address = target.and_then(|t| t.trim_end_matches("/64").parse::<IpAddr>().ok());
                let (username, address) = match (target, address) {
                    (_, Some(ip)) => (None, Some(ClientAddress::counted(ip).to_string())),
                    (Some(name), None) => (Some(name.to_ascii_lowercase()), None),
                    (None, None) => (None, None),
                };
                let event = Event::command("throttle clear").with("of", target.unwrap_or("everyone"));
                let cleared = store::throttle::clear_matching(
                    self.pool(),
                    username.as_deref(),
                    address.as_deref(),
                    event,
                )
                .await
                .map_err(failure)?;
                println!(
                    "cleared {cleared} counters{}",
                    target.map(|t| format!(" of {t}")).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    async fn invite(&self, command: InviteCommand) -> Result<(), String> {
        match command {
            InviteCommand::Create { groups, expires, json } => {
                if self.settings.registration == Registration::Closed {
                    return Err(
                        "registration is \"closed\", so no invitation can be used: set registration = \
                                \"invite\" (or \"open\") first"
                            .into(),
                    );
                }
                let lifetime = expires.unwrap_or(invitations::DEFAULT_LIFETIME);
                if lifetime.as_secs() == 0 || lifetime > invitations::LONGEST_LIFETIME {
                    return Err("--expires must be between one second and a year".into());
                }
                let mut ids = Vec::new();
                let mut names = Vec::new();
                for name in &groups {
                    let group = self.find_group(name).await?;
                    if !ids.contains(&group.id) {
                        ids.push(group.id);
                        names.push(group.name);
                    }
                }
                let (public_url, now) = (&self.settings.public_url, store::now());
                let event = Event::command("invite create").with("groups", names.clone());
                let invitation = invitations::invite(self.pool(), public_url, &ids, (lifetime, now), event)
                    .await
                    .map_err(failure)?;
                audit(format_args!(
                    "invitation {} created, valid until {}, into groups [{}]",
                    invitation.id,
                    rfc3339(invitation.expires_at),
                    names.join(", ")
                ));
                if json {
                    let out = json!({"id": invitation.id, "token": invitation.token, "link": invitation.link,
                                     "expires_at": rfc3339(invitation.expires_at), "groups": names});
                    println!("{out}");
                } else {
                    let into = match names.is_empty() {
                        true => String::new(),
                        false => format!(", into {}", names.join(", ")),
                    };
                    println!(
                        "invitation {} (one use{into}, until {}):\n{}",
                        invitation.id,
                        rfc3339(invitation.expires_at),
                        invitation.link
                    );
                }
            }
            InviteCommand::List { json } => {
                let now = store::now();
                let rows = store::invitations::list(self.pool()).await.map_err(failure)?;
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|invitation| {
                        json!({"id": invitation.id, "state": invitation.standing(now).as_str(),
                               "groups": invitation.groups, "created_at": rfc3339(invitation.created_at),
                               "expires_at": rfc3339(invitation.expires_at),
                               "used_at": invitation.used_at.map(rfc3339), "used_by": invitation.used_by,
                               "revoked_at": invitation.revoked_at.map(rfc3339)})
                    })
                    .collect();
                print_rows(json, &rows, &["id", "state", "groups", "created_at", "expires_at", "used_by"]);
            }
            InviteCommand::Revoke { id } => {
                let event = Event::command("invite revoke").with("invitation", id);
                if !store::invitations::revoke(self.pool(), id, store::now(), event).await.map_err(failure)? {
                    let invitation = store::invitations::find(self.pool(), id).await.map_err(failure)?;
                    return Err(match invitation {
                        None => format!("there is no invitation {id}"),
                        Some(invitation) => match invitation.standing(store::now()) {
                            Standing::Used => format!(
                                "invitation {id} was used already{}: delete the account if it must go",
                                invitation.used_by.map(|name| format!(" (by {name})")).unwrap_or_default()
                            ),
                            _ => format!("invitation {id} was revoked already"),
                        },
                    });
                }
                audit(format_args!("invitation {id} revoked"));
                println!("revoked invitation {id}");
            }
        }
        Ok(())
    }

    async fn group(&self, command: GroupCommand) -> Result<(), String> {
        let now = store::now();
        match command {
            GroupCommand::Create { name } => {
                let parsed = Username::parse(&name)
                    .map_err(|e| format!("{e} (a group name follows the username rule)"))?;
                let event = Event::command("group create").with("group", parsed.as_str());
                match store::groups::create(self.pool(), &parsed, now, event).await.map_err(failure)? {
                    Some(_) => {
                        audit(format_args!("group {parsed} created"));
                        println!("created group {parsed}");
                    }
                    None => return Err(format!("there is a group named {name:?} already")),
                }
            }
            GroupCommand::Delete { name } => {
                let group = self.find_group(&name).await?;
                let event = Event::command("group delete").with("group", group.name.as_str());
                store::groups::delete(self.pool(), group.id, event).await.map_err(failure)?;
                audit(format_args!(
                    "group {} deleted, with its members [{}]",
                    group.name,
                    group.members.0.join(", ")
                ));
                println!("deleted group {} ({} members left it)", group.name, group.members.0.len());
            }
            GroupCommand::List { json } => {
                let groups = store::groups::list(self.pool()).await.map_err(failure)?;
                let rows: Vec<Value> = groups
                    .iter()
                    .map(|group| {
                        json!({"id": group.id, "name": group.name, "members": group.members.0,
                               "created_at": rfc3339(group.created_at)})
                    })
                    .collect();
                print_rows(json, &rows, &["name", "members", "created_at"]);
            }
            GroupCommand::Add { group, user } => {
                let (group, user) = (self.find_group(&group).await?, self.find(&user).await?);
                let event = about("group add", &user).with("group", group.name.as_str());
                match store::groups::add_member(self.pool(), (group.id, user.id), now, event)
                    .await
                    .map_err(failure)?
                {
                    true => {
                        audit(format_args!("group {}: {} added", group.name, user.username));
                        println!("added {} to {}", user.username, group.name);
                    }
                    false => println!("{} was in {} already", user.username, group.name),
                }
            }
            GroupCommand::Remove { group, user } => {
                let (group, user) = (self.find_group(&group).await?, self.find(&user).await?);
                let event = about("group remove", &user).with("group", group.name.as_str());
                match store::groups::remove_member(self.pool(), group.id, user.id, event)
                    .await
                    .map_err(failure)?
                {
                    true => {
                        audit(format_args!("group {}: {} removed", group.name, user.username));
                        println!("removed {} from {}", user.username, group.name);
                    }
                    false => println!("{} was not in {}: nothing to remove", user.username, group.name),
                }
            }
        }
        Ok(())
    }

    async fn find_group(&self, name: &str) -> Result<store::groups::Group, String> {
        store::groups::find(self.pool(), name)
            .await
            .map_err(failure)?
            .ok_or_else(|| format!("there is no group named {name:?} (miniauth group create {name})"))
    }

    async fn events(
        &self,
        user: Option<String>,
        since: Option<std::time::Duration>,
        limit: u32,
        json: bool,
    ) -> Result<(), String> {
        let since = since.map_or(0, |since| store::now().saturating_sub(store::seconds(since)));
        let events = store::events::query(self.pool(), user.as_deref().map(str::trim), since, limit.into())
            .await
            .map_err(failure)?;
        let rows: Vec<Value> = events
            .into_iter()
            .map(|event| {
                json!({"id": event.id, "at": rfc3339(event.at), "kind": event.kind, "user_id": event.user_id,
                       "username": event.username, "address": event.address, "device": event.device,
                       "user_agent": event.user_agent, "detail": event.detail})
            })
            .collect();
        print_rows(json, &rows, &["at", "kind", "username", "address", "device", "detail"]);
        Ok(())
    }

    async fn purge(&self) -> Result<(), String> {
        let retention =
            (store::seconds(self.settings.retention), store::seconds(self.settings.event_retention));
        let deleted =
            store::purge::purge_ended(self.pool(), store::now(), retention).await.map_err(failure)?;
        let event = Event::command("purge").with("deleted", deleted);
        self.pool().record(&[event]).await.map_err(failure)?;
        println!("purged {deleted} rows of ended sessions, spent tokens, counters and invitations");
        Ok(())
    }
}

/// The event of the sessions an administrator's command ended (a new password, second factors
/// reset).
fn ended_by_administrator(user: &crate::domain::User) -> Event {
    Event::new(EventKind::SessionRevoked, String::new(), store::events::COMMAND_LINE)
        .of(user.id, &user.username)
        .with("which", "all")
        .with("by", "administrator")
}

/// The event of an administrator's `name` command about `user`.
fn about(name: &str, user: &crate::domain::User) -> Event {
    Event::command(name).of(user.id, &user.username)
}

/// Records a change of groups or invitations: one line in the log (never a token).
fn audit(change: std::fmt::Arguments<'_>) {
    log::info!(target: crate::logging::AUDIT, "{change}");
}

/// The password on standard input, without the line break that ends it.
/// A new password, from standard input (asked once: there is no repeat field).
fn read_password() -> Result<TypedPassword, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    Ok(TypedPassword::new(password.strip_suffix('\r').unwrap_or(password), None))
}

/// A rule the input broke, as one line: every message of every field (else the failure).
fn refusal(e: Error) -> String {
    match e.field_errors() {
        Some(fields) => fields.into_values().flatten().collect::<Vec<_>>().join(" "),
        None => failure(e),
    }
}

/// What the keys of `algorithm` sign, with these settings.
fn signs(algorithm: SigningAlgorithm, settings: &TokenSettings) -> &'static str {
    match (algorithm == settings.algorithm && settings.configured_key.is_none(), algorithm) {
        (true, SigningAlgorithm::EdDSA) => "access and ID tokens",
        (true, _) => "access tokens",
        (false, _) => "ID tokens",
    }
}

fn failure(e: Error) -> String {
    match e {
        Error::Unavailable => "cannot reach the database".into(),
        e => e.cause(),
    }
}

/// Rows as one JSON array, or as a table with `columns` (an empty table says so).
fn print_rows(json: bool, rows: &[Value], columns: &[&str]) {
    if json {
        println!("{}", Value::from(rows.to_vec()));
        return;
    }
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let cell = |row: &Value, column: &str| match &row[column] {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        // Names (groups, members): comma-separated.
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|column| rows.iter().map(|row| cell(row, column).len()).max().unwrap_or(0).max(column.len()))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|column| column.to_uppercase()).collect());
    for row in rows {
        line(columns.iter().map(|column| cell(row, column)).collect());
    }
}
