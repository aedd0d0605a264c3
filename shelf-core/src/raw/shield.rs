//! Panic shielding, for engines that panic on damaged files: a panic
//! caught here prints nothing (no `panicked at`, no backtrace) and comes
//! back as its message.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::error::Error;

thread_local! {
    /// How many [`shield`] calls are running on this thread: while it is
    /// above zero, a panic is expected and caught, so it prints nothing.
    static SHIELD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

static QUIET_HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that stays silent while the
/// panicking thread is inside [`shield`] and hands every other panic to the
/// hook that was there before, so the program's own panics still print.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if SHIELD_DEPTH.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Decrements the shield depth when dropped, also on unwinding.
struct Depth;

impl Depth {
    fn enter() -> Depth {
        SHIELD_DEPTH.with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        SHIELD_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The message a panic was raised with (`"panicked"` when it carries no
/// string).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_owned()
    }
}

/// Runs `f`, catching a panic inside it without printing anything: the
/// panic's message comes back as the error. Meant for calls into an engine
/// that panics on a damaged file (redb, sled); the caller turns the message
/// into [`Error::Corrupted`] or [`OpenError::Corrupted`](crate::OpenError::Corrupted).
///
/// Silence relies on a panic hook installed at the first call, which wraps
/// the hook in place then; a hook set later by the program replaces it, and
/// shielded panics print again (they are still caught). Panics on other
/// threads (an engine's background threads) are not shielded.
///
/// # Errors
/// The panic's message, when `f` panicked.
pub fn shield<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let depth = Depth::enter();
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(depth);
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// An iterator whose every step runs under [`shield`]: a panic becomes one
/// error item (made by `on_panic` from the panic's message), then the end.
pub struct Shielded<I, F> {
    inner: I,
    on_panic: F,
    done: bool,
}

impl<I, F> Shielded<I, F> {
    /// Shields `inner`; `on_panic` makes the error of a caught panic.
    pub fn new(inner: I, on_panic: F) -> Self {
        Shielded { inner, on_panic, done: false }
    }

    fn step<T>(&mut self, f: impl FnOnce(&mut I) -> Option<Result<T, Error>>) -> Option<Result<T, Error>>
    where
        F: FnMut(String) -> Error,
    {
        if self.done {
            return None;
        }
        let inner = &mut self.inner;
        match shield(|| f(inner)) {
            Ok(item) => item,
            Err(message) => {
                self.done = true;
                Some(Err((self.on_panic)(message)))
            }
        }
    }
}

impl<T, I: Iterator<Item = Result<T, Error>>, F: FnMut(String) -> Error> Iterator for Shielded<I, F> {
    type Item = Result<T, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(Iterator::next)
    }
}

impl<T, I: DoubleEndedIterator<Item = Result<T, Error>>, F: FnMut(String) -> Error> DoubleEndedIterator
    for Shielded<I, F>
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(DoubleEndedIterator::next_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shielded_panic_comes_back_as_its_message() {
        assert_eq!(shield(|| 7), Ok(7));
        assert_eq!(shield(|| -> u8 { panic!("boom {}", 1) }), Err("boom 1".to_owned()));
        // Nested shields keep the depth balanced.
        let inner = shield(|| shield(|| -> u8 { panic!("inner") }));
        assert_eq!(inner, Ok(Err("inner".to_owned())));
        assert_eq!(SHIELD_DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn a_shielded_iterator_ends_after_a_panic() {
        let items = (0..5).map(|i| if i == 2 { panic!("bad page") } else { Ok::<_, Error>(i) });
        let got: Vec<_> = Shielded::new(items, |m| Error::Corrupted { path: "p".into(), detail: m })
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        assert_eq!(got, vec![Ok(0), Ok(1), Err("p is corrupted: bad page".to_owned())]);
    }
}
