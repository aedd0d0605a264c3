//! The in-memory index: key → (pos, siz), in insertion order like the
//! Python dict CPython keeps, compact enough for millions of keys.
//!
//! Two structures, each fit for one job:
//! - the order: fixed-size entries in insertion order, their keys back to
//!   back in one arena (no allocation per key). Removing a key leaves a
//!   hole, as in CPython's dict; the holes are squeezed out once they
//!   outnumber the live entries.
//! - the lookup: a hash table whose slots hold the value's `(pos, siz)`
//!   and the key itself when it is short (up to [`INLINE`] bytes; longer
//!   keys keep their first bytes and their place in the arena). A get of a
//!   short key so touches the table's control bytes and one slot, not a
//!   slot, an entry and the arena (three dependent cache misses).
//!
//! 80 to 130 bytes per key in all, plus the key's own bytes (a 32-byte
//! entry, a 40-byte slot and its control byte, over a table that grows by
//! doubling: 1,000,000 keys of 16 bytes reopen in 130 MiB of peak RSS,
//! `examples/million_keys.rs`).

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

/// Marks a removed entry.
const DEAD: u32 = u32::MAX;

/// Keys up to this many bytes live in the hash slot itself.
pub const INLINE: usize = 16;

/// Of a longer key, the slot keeps this many first bytes (a cheap filter
/// before the arena is read) and its arena offset in the rest.
const PREFIX: usize = 8;

/// The longest key the index holds (a `.dir` line per key makes longer ones
/// impractical long before this).
pub const MAX_KEY_LEN: usize = (u32::MAX - 1) as usize;

/// A key in insertion order.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key_off: u64,
    pos: u64,
    siz: u64,
    key_len: u32,
}

/// A hash slot: what a get needs, in one 40-byte record.
#[derive(Clone, Copy, Debug)]
struct Slot {
    pos: u64,
    siz: u64,
    /// The entry (insertion order) of this key.
    entry: u32,
    len: u32,
    /// The key, NUL-padded, when `len <= INLINE`; otherwise its first
    /// [`PREFIX`] bytes and its arena offset (little-endian).
    key: [u8; INLINE],
}

/// A key prepared for comparison with slots: its padded inline form (or
/// prefix), built once per lookup rather than once per probed slot.
struct Probe<'k> {
    key: &'k [u8],
    padded: [u8; INLINE],
}

impl<'k> Probe<'k> {
    fn new(key: &'k [u8]) -> Self {
        let mut padded = [0u8; INLINE];
        if key.len() <= INLINE {
            padded[..key.len()].copy_from_slice(key);
        } else {
            padded[..PREFIX].copy_from_slice(&key[..PREFIX]);
        }
        Probe { key, padded }
    }

    fn matches(&self, s: &Slot, arena: &[u8]) -> bool {
        if s.len as usize != self.key.len() {
            return false;
        }
        if self.key.len() <= INLINE {
            return s.key == self.padded;
        }
        s.key[..PREFIX] == self.padded[..PREFIX] && long_key(s, arena) == self.key
    }
}

/// The arena bytes of a slot's long key.
fn long_key<'a>(s: &Slot, arena: &'a [u8]) -> &'a [u8] {
    let mut off = [0u8; 8];
    off.copy_from_slice(&s.key[PREFIX..]);
    // Offsets come from our own arena, so they fit in usize.
    let start = u64::from_le_bytes(off) as usize;
    &arena[start..start + s.len as usize]
}

/// A slot's key bytes.
fn slot_key<'a>(s: &'a Slot, arena: &'a [u8]) -> &'a [u8] {
    if s.len as usize <= INLINE { &s.key[..s.len as usize] } else { long_key(s, arena) }
}

/// Keys in insertion order with their `(pos, siz)`.
#[derive(Debug, Default)]
pub struct Index {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    table: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    live: usize,
}

impl Index {
    /// An empty index with room for about `keys` keys of `key_bytes` bytes in all.
    pub fn with_capacity(keys: usize, key_bytes: usize) -> Self {
        Index {
            arena: Vec::with_capacity(key_bytes),
            entries: Vec::with_capacity(keys),
            table: HashTable::with_capacity(keys),
            hasher: DefaultHashBuilder::default(),
            live: 0,
        }
    }

    fn key_of(&self, e: &Entry) -> &[u8] {
        // Offsets come from our own arena, so they fit in usize.
        let start = e.key_off as usize;
        &self.arena[start..start + e.key_len as usize]
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `(pos, siz)` of `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<(u64, u64)> {
        let hash = self.hasher.hash_one(key);
        let probe = Probe::new(key);
        let arena = &self.arena;
        self.table.find(hash, |s| probe.matches(s, arena)).map(|s| (s.pos, s.siz))
    }

    /// Sets `key` to `(pos, siz)`: in place for an existing key (its order
    /// is kept, as a dict keeps it), at the end for a new one. Keys longer
    /// than [`MAX_KEY_LEN`] must be refused by the caller.
    pub fn set(&mut self, key: &[u8], pos: u64, siz: u64) {
        let hash = self.hasher.hash_one(key);
        let probe = Probe::new(key);
        let arena = &self.arena;
        if let Some(s) = self.table.find_mut(hash, |s| probe.matches(s, arena)) {
            s.pos = pos;
            s.siz = siz;
            let e = &mut self.entries[s.entry as usize];
            e.pos = pos;
            e.siz = siz;
            return;
        }
        if self.entries.len() >= (DEAD - 1) as usize {
            self.squeeze();
        }
        let entry = u32::try_from(self.entries.len()).unwrap_or(DEAD - 1);
        let key_off = self.arena.len() as u64;
        let mut slot = Slot { pos, siz, entry, len: key.len() as u32, key: probe.padded };
        if key.len() > INLINE {
            slot.key[PREFIX..].copy_from_slice(&key_off.to_le_bytes());
        }
        self.arena.extend_from_slice(key);
        self.entries.push(Entry { key_off, pos, siz, key_len: key.len() as u32 });
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table.insert_unique(hash, slot, |s| hasher.hash_one(slot_key(s, arena)));
        self.live += 1;
    }

    /// Removes `key`, returning its `(pos, siz)`.
    pub fn remove(&mut self, key: &[u8]) -> Option<(u64, u64)> {
        let hash = self.hasher.hash_one(key);
        let probe = Probe::new(key);
        let arena = &self.arena;
        let Ok(found) = self.table.find_entry(hash, |s| probe.matches(s, arena)) else { return None };
        let (slot, _) = found.remove();
        self.entries[slot.entry as usize].key_len = DEAD;
        self.live -= 1;
        if self.entries.len() > 1024 && self.live < self.entries.len() / 2 {
            self.squeeze();
        }
        Some((slot.pos, slot.siz))
    }

    /// Drops removed entries and their key bytes, keeping the order.
    fn squeeze(&mut self) {
        let mut fresh = Index::with_capacity(self.live, self.arena.len());
        for (k, pos, siz) in self.iter() {
            fresh.set(k, pos, siz);
        }
        *self = fresh;
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        *self = Index::default();
    }

    /// `(key, pos, siz)` in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64, u64)> + '_ {
        self.entries.iter().filter(|e| e.key_len != DEAD).map(|e| (self.key_of(e), e.pos, e.siz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_dict_order_through_removes() {
        let mut ix = Index::default();
        for i in 0..3000u32 {
            ix.set(&i.to_le_bytes(), u64::from(i), 1);
        }
        for i in (0..3000u32).filter(|i| i % 3 != 0) {
            assert_eq!(ix.remove(&i.to_le_bytes()), Some((u64::from(i), 1)));
        }
        ix.set(&1u32.to_le_bytes(), 7, 7);
        ix.set(&0u32.to_le_bytes(), 9, 9);
        let order: Vec<u32> = ix.iter().map(|(k, _, _)| u32::from_le_bytes(k.try_into().unwrap())).collect();
        let mut want: Vec<u32> = (0..3000).filter(|i| i % 3 == 0).collect();
        want.push(1);
        assert_eq!(order, want);
        assert_eq!(ix.get(&0u32.to_le_bytes()), Some((9, 9)));
        assert_eq!(ix.len(), 1001);
        assert_eq!(ix.remove(b"nope"), None);
    }

    /// Short, boundary-length and long keys, keys that differ only past
    /// the inline prefix, keys that are prefixes of each other and keys
    /// ending in NUL (which padding must not confuse with shorter ones),
    /// checked against a std map through sets, overwrites, removes and
    /// squeezes.
    #[test]
    fn agrees_with_a_map_for_every_key_shape() {
        use std::collections::HashMap;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for len in 0..=40usize {
            keys.push(vec![b'k'; len]);
            keys.push(vec![0u8; len]);
            let mut tail = vec![b'p'; len];
            if let Some(last) = tail.last_mut() {
                *last = b'q';
            }
            keys.push(tail);
        }
        for i in 0..2000u32 {
            keys.push(format!("a-long-common-prefix-{i}").into_bytes());
            keys.push(format!("k{i}").into_bytes());
        }
        keys.sort();
        keys.dedup();
        let mut ix = Index::default();
        let mut model: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        for (round, step) in [(0u64, 1usize), (1, 2), (2, 3)] {
            for (i, k) in keys.iter().enumerate().step_by(step) {
                let v = (i as u64 * 512 + round, k.len() as u64 + round);
                ix.set(k, v.0, v.1);
                model.insert(k.clone(), v);
            }
            for k in keys.iter().skip(round as usize).step_by(4) {
                assert_eq!(ix.remove(k), model.remove(k));
            }
            for k in &keys {
                assert_eq!(ix.get(k), model.get(k).copied(), "key {k:?}");
            }
            assert_eq!(ix.len(), model.len());
            let listed: HashMap<Vec<u8>, (u64, u64)> =
                ix.iter().map(|(k, p, s)| (k.to_vec(), (p, s))).collect();
            assert_eq!(listed, model);
        }
    }
}
