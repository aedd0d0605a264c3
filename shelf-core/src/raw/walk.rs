//! Listings checked for wholeness.

use crate::backend::KvPair;
use crate::error::Error;

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
                        crate::error::show_key(&k)
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
