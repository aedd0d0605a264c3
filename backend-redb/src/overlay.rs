//! The write overlay of multi-process mode: pending writes, kept in memory
//! until a commit (other processes may write the file meanwhile), and
//! the merge of the file's entries with them.

use std::collections::BTreeMap;
use std::ops::Bound;

use shelf_core::{Error, KvPair, KvRange};

/// Bytes counted per overlay entry on top of its key and value, for the
/// map's own bookkeeping.
const ENTRY_OVERHEAD: usize = 48;

/// Where a pending value lies in the overlay's arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    start: usize,
    len: usize,
}

/// The pending writes: each key's new value (`None` for a remove), the
/// values kept end to end in one arena so a write costs no allocation of
/// its own. An overwrite that fits reuses its value's place; a longer one
/// is appended (the arena counts toward the bound, so it stays bounded).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    map: BTreeMap<Vec<u8>, Option<Span>>,
    arena: Vec<u8>,
    key_bytes: usize,
}

impl Overlay {
    pub(crate) fn slice(&self, span: Span) -> &[u8] {
        &self.arena[span.start..span.start + span.len]
    }

    /// `Some(value or None for a remove)` when the overlay holds `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.map.get(key).map(|s| s.map(|s| self.slice(s)))
    }

    /// Every pending write in key order: the key and its value, or `None`
    /// for a remove.
    pub(crate) fn writes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.map.iter().map(|(k, s)| (k.as_slice(), s.map(|s| self.slice(s))))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Memory held, as counted against the bound.
    pub(crate) fn bytes(&self) -> usize {
        self.arena.len() + self.key_bytes + self.map.len() * ENTRY_OVERHEAD
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.arena.clear();
        self.key_bytes = 0;
    }

    fn push(arena: &mut Vec<u8>, v: &[u8]) -> Span {
        let start = arena.len();
        arena.extend_from_slice(v);
        Span { start, len: v.len() }
    }

    /// Records a write; `in_db` tells, for a key new to the overlay, whether
    /// the file holds it. Returns the change in the number of keys.
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        in_db: impl FnOnce() -> Result<bool, Error>,
    ) -> Result<isize, Error> {
        use std::collections::btree_map::Entry;
        match self.map.entry(key.to_vec()) {
            Entry::Occupied(mut e) => {
                let old = *e.get();
                let new = match (old, value) {
                    (Some(old), Some(v)) if v.len() <= old.len => {
                        self.arena[old.start..old.start + v.len()].copy_from_slice(v);
                        Some(Span { start: old.start, len: v.len() })
                    }
                    (_, Some(v)) => Some(Self::push(&mut self.arena, v)),
                    (_, None) => None,
                };
                *e.get_mut() = new;
                Ok(value.is_some() as isize - old.is_some() as isize)
            }
            Entry::Vacant(e) => {
                let in_db = in_db()?;
                self.key_bytes += key.len();
                e.insert(value.map(|v| Self::push(&mut self.arena, v)));
                Ok(value.is_some() as isize - in_db as isize)
            }
        }
    }

    /// `db`, the file's entries within the bounds, merged with the
    /// overlay's writes within them.
    pub(crate) fn merge<'a>(
        &'a self,
        db: KvRange<'static>,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> KvRange<'a> {
        if self.is_empty() {
            return db;
        }
        Box::new(Merge {
            db,
            over: self.map.range::<[u8], _>((lower, upper)),
            arena: &self.arena,
            db_front: None,
            db_back: None,
            over_front: None,
            over_back: None,
        })
    }
}

type OverItem<'a> = (&'a Vec<u8>, &'a Option<Span>);

/// The file's entries merged with the overlay's, in key order from both
/// ends: an overlay entry hides the file's entry of the same key, and an
/// overlay remove hides it altogether.
struct Merge<'a, O> {
    db: KvRange<'static>,
    over: O,
    arena: &'a [u8],
    db_front: Option<Result<KvPair, Error>>,
    db_back: Option<Result<KvPair, Error>>,
    over_front: Option<OverItem<'a>>,
    over_back: Option<OverItem<'a>>,
}
impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> Merge<'a, O> {
    fn step(&mut self, forward: bool) -> Option<Result<KvPair, Error>> {
        loop {
            let (db_slot, db_other, over_slot, over_other) = if forward {
                (&mut self.db_front, &mut self.db_back, &mut self.over_front, &mut self.over_back)
            } else {
                (&mut self.db_back, &mut self.db_front, &mut self.over_back, &mut self.over_front)
            };
            if db_slot.is_none() {
                *db_slot =
                    if forward { self.db.next() } else { self.db.next_back() }.or_else(|| db_other.take());
            }
            if over_slot.is_none() {
                *over_slot = if forward { self.over.next() } else { self.over.next_back() }
                    .or_else(|| over_other.take());
            }
            if let Some(Err(_)) = db_slot {
                return db_slot.take();
            }
            let db_key = db_slot.as_ref().and_then(|r| r.as_ref().ok()).map(|(k, _)| k.as_slice());
            let over_key = over_slot.as_ref().map(|(k, _)| k.as_slice());
            let take_over = match (db_key, over_key) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(d), Some(o)) => {
                    if d == o {
                        *db_slot = None;
                        true
                    } else {
                        (o < d) == forward
                    }
                }
            };
            if take_over {
                let (k, span) = over_slot.take()?;
                match span {
                    Some(s) => return Some(Ok((k.clone(), self.arena[s.start..s.start + s.len].to_vec()))),
                    None => continue,
                }
            }
            return db_slot.take();
        }
    }
}

impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> Iterator for Merge<'a, O> {
    type Item = Result<KvPair, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl<'a, O: DoubleEndedIterator<Item = OverItem<'a>>> DoubleEndedIterator for Merge<'a, O> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}
