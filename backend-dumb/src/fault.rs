//! Fault injection for the reliability tests: with the `fault-injection`
//! feature, `arm` makes the N-th write, fsync or rename this thread does
//! through the backend fail with a chosen `errno` (ENOSPC, EIO...). Without
//! the feature every hook is an inlined `Ok(())`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[cfg(feature = "fault-injection")]
mod imp {
    use std::cell::Cell;

    thread_local! {
        static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
        static ERRNO: Cell<i32> = const { Cell::new(0) };
        static SEEN: Cell<u64> = const { Cell::new(0) };
    }

    /// Makes the `n`-th (from 1) faultable operation from now on fail with
    /// `errno`, once.
    pub fn arm(n: u64, errno: i32) {
        COUNTDOWN.set(n);
        ERRNO.set(errno);
        SEEN.set(0);
    }

    /// Cancels a pending fault.
    pub fn disarm() {
        COUNTDOWN.set(0);
    }

    /// Faultable operations since the last [`arm`].
    pub fn operations() -> u64 {
        SEEN.get()
    }

    pub(crate) fn hit() -> std::io::Result<()> {
        SEEN.set(SEEN.get() + 1);
        match COUNTDOWN.get() {
            0 => Ok(()),
            1 => {
                COUNTDOWN.set(0);
                Err(std::io::Error::from_raw_os_error(ERRNO.get()))
            }
            n => {
                COUNTDOWN.set(n - 1);
                Ok(())
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
pub use imp::{arm, disarm, operations};

#[cfg(feature = "fault-injection")]
use imp::hit;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn hit() -> io::Result<()> {
    Ok(())
}

/// A point where a write may fail (for writes through a `Write`).
pub(crate) fn point() -> io::Result<()> {
    hit()
}

/// `file.write_all_at(buf, pos)`, faultable.
pub(crate) fn write_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    hit()?;
    file.write_all_at(buf, pos)
}

/// `file.sync_data()`, faultable.
pub(crate) fn sync(file: &File) -> io::Result<()> {
    hit()?;
    file.sync_data()
}

/// Asks the kernel to start writing `len` bytes of `file` at `pos` back
/// to the disk, without waiting for them: the `fdatasync` of the commit
/// then finds most of them written. A hint only (not a fault point): a
/// failure here changes nothing, and the commit's `fdatasync` reports
/// any write error.
pub(crate) fn start_writeback(file: &File, pos: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(pos), Ok(len)) = (i64::try_from(pos), i64::try_from(len)) else { return };
        #[allow(unsafe_code)]
        // SAFETY: sync_file_range reads no memory of ours; the descriptor
        // is `file`'s, open for the duration of the call.
        let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), pos, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, pos, len);
}

/// `fs::rename`, faultable.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    hit()?;
    std::fs::rename(from, to)
}
