//! The closed / read-only guard every backend keeps, with one wording for
//! the errors it gives.

use crate::backend::Flag;
use crate::error::Error;

/// Whether a backend handle is still open and whether it may write.
///
/// Every operation starts with [`live`](Self::live) (reads) or
/// [`writable`](Self::writable) (writes), so a use after `close` is
/// [`Error::Closed`] and a write through a read-only handle is
/// [`Error::ReadOnly`] naming the operation, in every backend alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    closed: bool,
    read_only: bool,
}

impl Lifecycle {
    /// An open handle, read-only when `flag` is [`Flag::Read`].
    pub fn new(flag: Flag) -> Self {
        Lifecycle { closed: false, read_only: !flag.is_writable() }
    }

    /// `Ok` while open.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`close`](Self::close).
    pub fn live(&self) -> Result<(), Error> {
        if self.closed { Err(Error::Closed) } else { Ok(()) }
    }

    /// `Ok` while open and writable.
    ///
    /// # Errors
    /// [`Error::Closed`] after close; [`Error::ReadOnly`] naming
    /// `operation` on a read-only handle.
    pub fn writable(&self, operation: &'static str) -> Result<(), Error> {
        self.live()?;
        if self.read_only { Err(Error::read_only(operation)) } else { Ok(()) }
    }

    /// Whether the handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Marks the handle closed; returns whether it was open, so that a
    /// backend's `close` does its work once and is idempotent after.
    pub fn close(&mut self) -> bool {
        !std::mem::replace(&mut self.closed, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_say_closed_then_read_only() {
        let mut w = Lifecycle::new(Flag::Write);
        assert!(w.live().is_ok() && w.writable("insert").is_ok());
        assert!(w.close());
        assert!(!w.close(), "a second close has nothing to do");
        assert!(matches!(w.writable("insert"), Err(Error::Closed)));
        let r = Lifecycle::new(Flag::Read);
        assert!(r.live().is_ok());
        assert!(matches!(r.writable("insert"), Err(Error::ReadOnly { operation: "insert", .. })));
    }
}
