//! Files sessiond creates that hold secrets or must survive a crash (the hub signing key,
//! TLS keys, backups, a seed's output): created with the mode asked for on Unix (0600 for
//! secrets), written whole and synced before anyone relies on them.

use std::io::Write;
use std::path::Path;

/// Owner-only: keys, backups, anything holding a secret.
pub const PRIVATE: u32 = 0o600;

/// Opens `path` for writing with `mode`: a new file only (`replace == false`: an existing
/// one is an `AlreadyExists` error, never overwritten), or a new or emptied one whose mode
/// is set to `mode` even if it existed with a looser one.
pub fn create(path: &Path, mode: u32, replace: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if replace {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    let f = o.open(path)?;
    #[cfg(unix)]
    if replace {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(f)
}

/// [`create`], then `bytes` written and synced.
pub fn write(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> std::io::Result<()> {
    let mut f = create(path, mode, replace)?;
    f.write_all(bytes)?;
    f.sync_all()
}
