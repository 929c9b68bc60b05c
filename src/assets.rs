//! The page templates and static files. They are built into the binary, so the binary alone
//! serves every page from any folder; `template_dir` / `static_dir` point at folders of one's
//! own instead, for people who restyle. rocket_dyn_templates and `FileServer` read folders, so
//! the built-in copies are unpacked at start into a private temporary folder that goes away at
//! shutdown.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rocket::fairing::AdHoc;
use rocket_dyn_templates::Template;
use rust_embed::RustEmbed;
use serde_json::Value;
use tempfile::TempDir;

#[derive(RustEmbed)]
#[folder = "templates/"]
struct BuiltInTemplates;

#[derive(RustEmbed)]
#[folder = "static/"]
struct BuiltInStatic;

/// A built-in template's text, by its path under `templates/` (e.g. `mail/reset.txt`).
pub fn built_in_template(path: &str) -> Option<String> {
    BuiltInTemplates::get(path).map(|file| String::from_utf8_lossy(&file.data).into_owned())
}

/// Where the templates and static files are served from.
pub struct Assets {
    pub template_dir: PathBuf,
    pub static_dir: PathBuf,
    /// The unpacked built-in copies, removed when the server stops.
    _unpacked: Option<TempDir>,
}

impl Assets {
    fn locate(template_dir: &Option<PathBuf>, static_dir: &Option<PathBuf>) -> std::io::Result<Assets> {
        let unpacked = match (template_dir, static_dir) {
            (Some(_), Some(_)) => None,
            _ => Some(unpack()?),
        };
        let built_in =
            |folder: &str| unpacked.as_ref().map(|dir| dir.path().join(folder)).unwrap_or_default();
        Ok(Assets {
            template_dir: template_dir.clone().unwrap_or_else(|| built_in("templates")),
            static_dir: static_dir.clone().unwrap_or_else(|| built_in("static")),
            _unpacked: unpacked,
        })
    }
}

fn unpack() -> std::io::Result<TempDir> {
    let dir = tempfile::Builder::new().prefix("miniauth-assets-").tempdir()?;
    write_all::<BuiltInTemplates>(&dir.path().join("templates"))?;
    write_all::<BuiltInStatic>(&dir.path().join("static"))?;
    Ok(dir)
}

fn write_all<Files: RustEmbed>(folder: &Path) -> std::io::Result<()> {
    for name in Files::iter() {
        let path = folder.join(name.as_ref());
        fs::create_dir_all(path.parent().unwrap_or(folder))?;
        let file =
            Files::get(&name).ok_or_else(|| std::io::Error::other(format!("{name} is not built in")))?;
        fs::write(path, file.data)?;
    }
    Ok(())
}

/// Finds (or unpacks) the templates and static files, from `template_dir` and `static_dir`
/// or built in, and starts the template engine on them; templates read `form_rules` (the
/// bounds of the forms' fields) as `rules()`.
pub fn stage(template_dir: Option<PathBuf>, static_dir: Option<PathBuf>, form_rules: Value) -> AdHoc {
    AdHoc::try_on_ignite("Templates and static files", |rocket| async move {
        let assets = match Assets::locate(&template_dir, &static_dir) {
            Ok(assets) => assets,
            Err(e) => {
                log::error!("cannot unpack the built-in templates and static files: {e}");
                return Err(rocket);
            }
        };
        for (what, configured) in [("templates", &template_dir), ("static files", &static_dir)] {
            match configured {
                Some(dir) => log::info!("{what}: {}", dir.display()),
                None => log::info!("{what}: built in"),
            }
        }
        let figment = rocket.figment().clone().merge(("template_dir", &assets.template_dir));
        let templates = Template::custom(move |engines| {
            let rules = form_rules.clone();
            engines.tera.register_function("rules", move |_: &HashMap<String, Value>| Ok(rules.clone()));
        });
        Ok(rocket.configure(figment).manage(assets).attach(templates))
    })
}
