//! Taking a lock with a deadline: one retry loop for every backend.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::BackendOptions;
use crate::error::OpenError;

pub use crate::backend::LOCK_GRACE;

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Whether a lock may be shared with other readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Several holders at once (readers).
    Shared,
    /// One holder (a writer).
    Exclusive,
}

/// Runs `attempt` until it takes the lock, retrying while the lock is held
/// (`Ok(None)`) with a pause doubling from 1 ms to 50 ms, until
/// [`BackendOptions::lock_deadline`].
///
/// # Errors
/// [`OpenError::Locked`] naming `path` once the deadline has passed;
/// `attempt`'s own errors at once.
pub fn retry_while_locked<T>(
    path: &Path,
    options: &BackendOptions,
    mut attempt: impl FnMut() -> Result<Option<T>, OpenError>,
) -> Result<T, OpenError> {
    let deadline = options.lock_deadline();
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(done) = attempt()? {
            return Ok(done);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(OpenError::Locked { path: path.to_owned() });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Takes an advisory lock (`flock`) on `file`, retrying until the
/// options' deadline. `database` names the database in
/// [`OpenError::Locked`]; `file_path` names the file in I/O errors.
///
/// # Errors
/// [`OpenError::Locked`]; [`OpenError::Io`] when locking itself fails.
pub fn lock_file(
    file: &File,
    kind: LockKind,
    database: &Path,
    file_path: &Path,
    options: &BackendOptions,
) -> Result<(), OpenError> {
    retry_while_locked(database, options, || {
        let tried = match kind {
            LockKind::Shared => file.try_lock_shared(),
            LockKind::Exclusive => file.try_lock(),
        };
        match tried {
            Ok(()) => Ok(Some(())),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(OpenError::io(file_path, e)),
        }
    })
}

/// Waits, at most `max`, until nobody holds a lock on the file at `path`
/// (or it is gone): for engines whose background threads let go of their
/// lock a moment after the database is dropped, so a close is followed by
/// an open that succeeds.
pub fn wait_for_release(path: &Path, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let Ok(f) = File::open(path) else { return };
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                return;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(FIRST_PAUSE),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_locked_after_the_deadline_and_taken_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let other = File::open(&path).unwrap();
        let options = BackendOptions::default();
        let started = Instant::now();
        let err = lock_file(&other, LockKind::Exclusive, &path, &path, &options).unwrap_err();
        assert!(matches!(err, OpenError::Locked { .. }), "{err}");
        assert!(started.elapsed() >= LOCK_GRACE, "retried for the grace period");
        holder.unlock().unwrap();
        lock_file(&other, LockKind::Shared, &path, &path, &options).unwrap();
    }

    #[test]
    fn attempt_errors_end_the_retries_at_once() {
        let options = BackendOptions::default();
        let mut calls = 0;
        let err = retry_while_locked::<()>(Path::new("db"), &options, || {
            calls += 1;
            Err(OpenError::Corrupted { path: "db".into(), detail: "bad".into() })
        })
        .unwrap_err();
        assert!(matches!(err, OpenError::Corrupted { .. }));
        assert_eq!(calls, 1);
    }
}
