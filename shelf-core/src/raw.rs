//! The implementor's toolkit: plumbing that backends share, so that a
//! backend crate holds only its engine (the idea of OpenDAL's `raw`
//! module). Users of shelf have no need of it.
//!
//! - Panic shielding, for engines that panic on damaged files:
//!   [`shield`] runs a closure, [`Shielded`] an iterator, and a panic
//!   caught there prints nothing (no `panicked at`, no backtrace).
//! - Value checksums, for engines whose stored format is shelf's own:
//!   [`seal`] appends a checksum over the key and the value, [`unseal`]
//!   verifies and strips it.
//! - [`Walk`], an iterator adapter that turns a listing that cannot be
//!   whole (keys out of order, fewer or more entries than the engine
//!   counts) into an error instead of a shorter list.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::{Error, KvPair};

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

/// Bytes [`seal`] adds to a value.
pub const SEAL_LEN: usize = 4;

/// The checksum of an entry: CRC-32 (the IEEE polynomial of zlib, computed
/// with `crc32fast`, SIMD where the CPU has it) over the key's length
/// (eight little-endian bytes), the key and the value. The length keeps
/// `("ab", "c")` and `("a", "bc")` apart.
pub fn checksum(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// Appends `value` and its [`checksum`] (four little-endian bytes) to `out`:
/// the stored form of an entry whose engine does not check values itself.
pub fn seal_into(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + SEAL_LEN);
    out.extend_from_slice(value);
    out.extend_from_slice(&checksum(key, value).to_le_bytes());
}

/// `value` followed by its checksum (see [`seal_into`]).
pub fn seal(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + SEAL_LEN);
    seal_into(key, value, &mut out);
    out
}

/// The value inside a stored form written by [`seal`], when its checksum
/// matches `key` and the value; `None` when the bytes were damaged (or
/// belong to another key).
pub fn unseal<'a>(key: &[u8], stored: &'a [u8]) -> Option<&'a [u8]> {
    let split = stored.len().checked_sub(SEAL_LEN)?;
    let (value, sum) = stored.split_at(split);
    let sum = u32::from_le_bytes(sum.try_into().ok()?);
    (checksum(key, value) == sum).then_some(value)
}

/// A listing checked for wholeness: keys must come strictly ascending from
/// the front and strictly descending from the back (never crossing), and
/// when the number of entries is known (`expected`), the walk must end
/// having yielded exactly that many. A breach becomes one error item (made
/// by `on_damage` from a description), then the end: an engine that lost
/// or repeated entries gives an error, never a shorter or longer list.
///
/// The count is only checked when the walk ends (`None` from either end),
/// so a caller that stops early checks nothing, and only for a walk over
/// every key (`expected` is for the whole table).
pub struct Walk<I, F> {
    inner: I,
    on_damage: F,
    expected: Option<u64>,
    seen: u64,
    front: Option<Vec<u8>>,
    back: Option<Vec<u8>>,
    done: bool,
}

impl<I, F> Walk<I, F> {
    /// Checks `inner`; `expected` is the number of entries a complete walk
    /// yields, where the engine knows it.
    pub fn new(inner: I, expected: Option<u64>, on_damage: F) -> Self {
        Walk { inner, on_damage, expected, seen: 0, front: None, back: None, done: false }
    }
}

impl<I, F> Walk<I, F>
where
    I: DoubleEndedIterator<Item = Result<KvPair, Error>>,
    F: FnMut(String) -> Error,
{
    fn step(&mut self, forward: bool) -> Option<Result<KvPair, Error>> {
        if self.done {
            return None;
        }
        let item = if forward { self.inner.next() } else { self.inner.next_back() };
        let result = match item {
            None => {
                self.done = true;
                return match self.expected {
                    Some(n) if n != self.seen => Some(Err((self.on_damage)(format!(
                        "a full listing found {} entries where the database counts {n}",
                        self.seen
                    )))),
                    _ => None,
                };
            }
            Some(Err(e)) => Err(e),
            Some(Ok((k, v))) => {
                let (last, other) =
                    if forward { (&self.front, &self.back) } else { (&self.back, &self.front) };
                let in_order = last.as_ref().is_none_or(|l| if forward { k > *l } else { k < *l });
                let not_crossed = other.as_ref().is_none_or(|o| if forward { k < *o } else { k > *o });
                if in_order && not_crossed {
                    self.seen += 1;
                    let slot = if forward { &mut self.front } else { &mut self.back };
                    *slot = Some(k.clone());
                    Ok((k, v))
                } else {
                    Err((self.on_damage)(format!(
                        "the engine yields keys out of order (at {:?})",
                        crate::show_key(&k)
                    )))
                }
            }
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl<I, F> Iterator for Walk<I, F>
where
    I: DoubleEndedIterator<Item = Result<KvPair, Error>>,
    F: FnMut(String) -> Error,
{
    type Item = Result<KvPair, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl<I, F> DoubleEndedIterator for Walk<I, F>
where
    I: DoubleEndedIterator<Item = Result<KvPair, Error>>,
    F: FnMut(String) -> Error,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
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

    #[test]
    fn seals_detect_every_single_byte_change() {
        let stored = seal(b"key", b"value");
        assert_eq!(unseal(b"key", &stored), Some(&b"value"[..]));
        assert_eq!(unseal(b"kex", &stored), None);
        for i in 0..stored.len() {
            for bit in 0..8 {
                let mut s = stored.clone();
                s[i] ^= 1 << bit;
                assert_eq!(unseal(b"key", &s), None, "byte {i} bit {bit}");
            }
        }
        assert_eq!(unseal(b"k", b"abc"), None, "shorter than a seal");
        assert_eq!(unseal(b"", &seal(b"", b"")), Some(&b""[..]));
    }

    #[test]
    fn a_walk_reports_a_short_or_disordered_listing() {
        let pairs = |ks: &[&[u8]]| ks.iter().map(|k| Ok((k.to_vec(), Vec::new()))).collect::<Vec<_>>();
        let damage = |m: String| Error::Corrupted { path: "p".into(), detail: m };
        let whole: Vec<_> = Walk::new(pairs(&[b"a", b"b"]).into_iter(), Some(2), damage).collect();
        assert!(whole.iter().all(Result::is_ok) && whole.len() == 2);
        let short: Vec<_> = Walk::new(pairs(&[b"a", b"b"]).into_iter(), Some(3), damage).collect();
        assert!(matches!(short.last(), Some(Err(Error::Corrupted { .. }))), "{short:?}");
        let disordered: Vec<_> = Walk::new(pairs(&[b"b", b"a"]).into_iter(), None, damage).collect();
        assert!(matches!(disordered.last(), Some(Err(Error::Corrupted { .. }))), "{disordered:?}");
        let mut both = Walk::new(pairs(&[b"a", b"b", b"c"]).into_iter(), Some(3), damage);
        assert!(both.next().is_some() && both.next_back().is_some() && both.next().is_some());
        assert!(both.next_back().is_none(), "three of three seen from both ends");
    }
}
