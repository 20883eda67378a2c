//! One run of a project at a time: an exclusive OS file lock on `<state_dir>/dfpipe.lock`.
//!
//! The operating system releases the lock when the process exits, however it exits, so a crash
//! never leaves a stale lock behind. The file holds the holder's pid, command and start time,
//! for the message the next run prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "dfpipe.lock";

/// Held while a command writes targets or the catalog; released on drop.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
    path: PathBuf,
}

impl ProjectLock {
    /// Takes the project's lock for `command`, or says who holds it.
    pub fn acquire(state_dir: &Path, command: &str) -> Result<ProjectLock> {
        let path = state_dir.join(LOCK_FILE);
        let fail = |e: std::io::Error| Error::Run(format!("cannot lock {}: {e}", path.display()));
        std::fs::create_dir_all(state_dir).map_err(fail)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked(format!(
                    "another dfpipe command is running on this project{}: runs of one project are not \
                     interleaved; wait for it to finish and try again (the lock on {} is released when it exits)",
                    if holder.is_empty() { String::new() } else { format!(" ({holder})") },
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(fail(e)),
        }
        let holder = format!(
            "`dfpipe {command}`, pid {}, since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(holder.as_bytes())).map_err(fail)?;
        Ok(ProjectLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("dfpipe-lock-{}", std::process::id()));
        let first = ProjectLock::acquire(&dir, "run").unwrap();
        let err = ProjectLock::acquire(&dir, "run").unwrap_err().to_string();
        assert!(err.starts_with("another dfpipe command is running on this project (`dfpipe run`, pid "), "{err}");
        assert!(err.contains("wait for it to finish and try again"), "{err}");
        drop(first);
        let again = ProjectLock::acquire(&dir, "run").unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
