//! The password file on disk for `midge passwd`: finding it, reading it, and replacing it
//! atomically.
//!
//! Knows nothing of the file's contents. Differences from `mosquitto_passwd` 2.0.11, which
//! rewrites the file in place through a `FILE.tmp` backup:
//! - The new contents go to a temporary file in the same directory, are synced, and are renamed
//!   over the old file, so a crash or a full disk leaves the old file or the new one, never a
//!   mixture, and no copy of the old hashes is left behind.
//! - The replacement keeps the old file's permission bits and owner, as an in-place rewrite
//!   would (a root-owned file that Mosquitto reads as user `mosquitto` must stay readable). If
//!   the owner cannot be kept, nothing is changed. A new file is created like Mosquitto 2.0.11
//!   creates it: mode 0666 less the umask (0644 under the usual umask). Hard links to the old
//!   file keep the old contents.
//! - Only regular files are edited (2.0.11 would also "edit" `/dev/null`).
//!
//! As in Mosquitto, a symbolic link is followed and its target is the file changed, and the
//! errors name the file by its real path once it exists.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// `path` with symbolic links resolved (`realpath`), or as given if it does not exist yet.
pub(super) fn resolve(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(path.to_owned()),
        Err(error) => Err(error),
    }
}

/// An existing password file, read.
#[derive(Debug)]
pub(super) struct Existing {
    pub(super) contents: Vec<u8>,
    metadata: Metadata,
}

/// Reads the file to be edited. It is opened for reading and writing, as Mosquitto opens it,
/// so it fails for the same reasons (missing, a directory, not writable).
pub(super) fn read_existing(path: &Path) -> io::Result<Existing> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let metadata = regular(&file)?;
    let mut contents = Vec::new();
    file.read_to_end(&mut contents)?;
    Ok(Existing { contents, metadata })
}

/// For `-c`: the file about to be overwritten, if there is one. Opened for writing without
/// truncating, so it fails where Mosquitto's `fopen(path, "w")` would.
pub(super) fn existing_for_create(path: &Path) -> io::Result<Option<Existing>> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => Ok(Some(Existing {
            contents: Vec::new(),
            metadata: regular(&file)?,
        })),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn regular(file: &File) -> io::Result<Metadata> {
    let metadata = file.metadata()?;
    if metadata.is_file() {
        Ok(metadata)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "Not a regular file"))
    }
}

/// Why a file could not be replaced.
#[derive(Debug)]
pub(super) enum WriteError {
    /// The temporary file could not be created (as Mosquitto's could not be opened).
    Create(io::Error),
    /// The old file's owner cannot be given to the new one.
    Owner(io::Error),
    /// Writing, syncing or renaming failed.
    Write(io::Error),
}

/// Replaces the file at `path` with `contents`, or creates it. `old` is the file being
/// replaced, whose mode and owner the new one takes.
pub(super) fn replace(path: &Path, contents: &[u8], old: Option<&Existing>) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or(path.as_os_str());
    // Private while the hashes are written; a new file gets its final mode (0666 less the
    // umask) from the kernel at creation, as Mosquitto's would.
    let create_mode = if old.is_some() { 0o600 } else { 0o666 };
    let mut temp = TempFile::create(dir, name, create_mode).map_err(WriteError::Create)?;
    if let Some(old) = old {
        let (uid, gid) = (old.metadata.uid(), old.metadata.gid());
        let current = temp.file.metadata().map_err(WriteError::Write)?;
        if (current.uid(), current.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&temp.file, Some(uid), Some(gid)).map_err(WriteError::Owner)?;
        }
    }
    temp.file.write_all(contents).map_err(WriteError::Write)?;
    if let Some(old) = old {
        let mode = old.metadata.permissions().mode() & 0o7777;
        temp.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(WriteError::Write)?;
    }
    temp.file.sync_all().map_err(WriteError::Write)?;
    fs::rename(&temp.path, path).map_err(WriteError::Write)?;
    temp.renamed = true;
    // The rename is durable once the directory is synced; the new contents already are.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `.NAME.midge-passwd.PID.N` beside the password file; removed unless it was renamed.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &OsStr, mode: u32) -> io::Result<Self> {
        let mut attempt = 0;
        loop {
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".midge-passwd.{}.{attempt}", std::process::id()));
            let path = dir.join(temp_name);
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path);
            match created {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        renamed: false,
                    });
                }
                // Left over from a run that was killed: never overwrite it, pick another name.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replacing_keeps_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let old = read_existing(&path).unwrap();
        assert_eq!(old.contents, b"old\n");
        replace(&path, b"new\n", Some(&old)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        assert_eq!(mode(&path), 0o640);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["pw"]);
    }

    #[test]
    fn a_symlink_is_followed_and_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        let link = dir.path().join("link");
        fs::write(&target, "old\n").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let real = resolve(&link).unwrap();
        let old = read_existing(&real).unwrap();
        replace(&real, b"new\n", Some(&old)).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new\n");
    }

    #[test]
    fn a_missing_file_resolves_to_itself_and_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new");
        assert_eq!(resolve(&path).unwrap(), path);
        assert!(existing_for_create(&path).unwrap().is_none());
        replace(&path, b"x\n", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x\n");
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_existing(dir.path()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(nix::libc::EISDIR));
        let error = read_existing(Path::new("/dev/null")).unwrap_err();
        assert_eq!(error.to_string(), "Not a regular file");
        assert!(existing_for_create(Path::new("/dev/null")).is_err());
    }
}
