//! The files MiniAuth keeps: only their owner may read them.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The sticky bit: a folder many users share (like `/tmp`).
const STICKY: u32 = 0o1000;

/// Makes the data folder, mode 0700, or takes from an existing one whatever its group and others
/// may do: it holds the SQLite file (by default), with the signing keys, and the outbox, with
/// reset links. Fixing it, rather than refusing to start, keeps the zero-configuration start
/// working where the folder was made by hand or by an older version (with the umask: 0755); a
/// folder that cannot be made private stops the start instead.
pub fn prepare_data_dir(data_dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", data_dir.display()))?;
    let mode = fs::metadata(data_dir)
        .map_err(|e| format!("cannot read data_dir {}: {e}", data_dir.display()))?
        .permissions()
        .mode();
    // Taking a folder like `/tmp` from everyone else would break the machine for them.
    if mode & STICKY != 0 && mode & 0o077 != 0 {
        return Err(format!(
            "data_dir {} is a folder other users share (mode {:04o}): give MiniAuth a folder of its own",
            data_dir.display(),
            mode & 0o7777
        ));
    }
    make_owner_only(data_dir)?;
    // The mailer makes the outbox 0700 when it writes the first message; one made before (by
    // hand, or by an older version) is held to the same rule, as is the secret file of
    // installations from before the keys moved into the database.
    make_owner_only(&data_dir.join("outbox"))?;
    make_owner_only(&data_dir.join("secret.key"))
}

/// Takes from the file or folder at `path`, if there is one, whatever its group and others may
/// do (0644 becomes 0600, 0755 becomes 0700), and says so in one line. An error, saying what to
/// do, when that is not allowed (another user owns it): the caller refuses to start, since what
/// it guards (the signing keys, reset links) would stay open to every local user.
pub fn make_owner_only(path: &Path) -> Result<(), String> {
    let mode = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read the mode of {}: {e}", path.display())),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let private = mode & !0o077;
    fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(|e| {
        format!(
            "{} is open to other users (mode {mode:04o}) and cannot be made private ({e}): \
             run `chmod go-rwx {}` as its owner, or run MiniAuth as its owner",
            path.display(),
            path.display()
        )
    })?;
    log::warn!("{} was open to other users (mode {mode:04o}); now mode {private:04o}", path.display());
    Ok(())
}
