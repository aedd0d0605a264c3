//! The in-memory index: key → (pos, siz), in insertion order like the
//! Python dict CPython keeps, compact enough for millions of keys.
//!
//! Keys live back to back in one arena and entries are fixed-size records,
//! so a key costs its own bytes plus about 45 bytes (a 32-byte entry and a
//! hash-table slot), not two heap allocations. Removing a key leaves a hole
//! in the order, as in CPython's dict, and the holes are squeezed out once
//! they outnumber the live entries.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

/// Marks a removed entry.
const DEAD: u32 = u32::MAX;

/// The longest key the index holds (a `.dir` line per key makes longer ones
/// impractical long before this).
pub const MAX_KEY_LEN: usize = (u32::MAX - 1) as usize;

#[derive(Clone, Copy, Debug)]
struct Entry {
    key_off: u64,
    pos: u64,
    siz: u64,
    key_len: u32,
}

/// Keys in insertion order with their `(pos, siz)`.
#[derive(Debug, Default)]
pub struct Index {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    table: HashTable<u32>,
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

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |&i| self.key_of(&self.entries[i as usize]) == key).copied()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `(pos, siz)` of `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u64, u64)> {
        self.find(key).map(|i| {
            let e = &self.entries[i as usize];
            (e.pos, e.siz)
        })
    }

    /// Sets `key` to `(pos, siz)`: in place for an existing key (its order
    /// is kept, as a dict keeps it), at the end for a new one. Keys longer
    /// than [`MAX_KEY_LEN`] must be refused by the caller.
    pub fn set(&mut self, key: &[u8], pos: u64, siz: u64) {
        if let Some(i) = self.find(key) {
            let e = &mut self.entries[i as usize];
            e.pos = pos;
            e.siz = siz;
            return;
        }
        if self.entries.len() >= (DEAD - 1) as usize {
            self.squeeze();
        }
        let i = u32::try_from(self.entries.len()).unwrap_or(DEAD - 1);
        let entry = Entry { key_off: self.arena.len() as u64, pos, siz, key_len: key.len() as u32 };
        self.arena.extend_from_slice(key);
        self.entries.push(entry);
        let hash = self.hasher.hash_one(key);
        let (entries, arena, hasher) = (&self.entries, &self.arena, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            let e = &entries[j as usize];
            hasher.hash_one(&arena[e.key_off as usize..e.key_off as usize + e.key_len as usize])
        });
        self.live += 1;
    }

    /// Removes `key`, returning its `(pos, siz)`.
    pub fn remove(&mut self, key: &[u8]) -> Option<(u64, u64)> {
        let hash = self.hasher.hash_one(key);
        let (entries, arena) = (&self.entries, &self.arena);
        let found = self.table.find_entry(hash, |&i| {
            let e = &entries[i as usize];
            &arena[e.key_off as usize..e.key_off as usize + e.key_len as usize] == key
        });
        let Ok(slot) = found else { return None };
        let (i, _) = slot.remove();
        let e = &mut self.entries[i as usize];
        let out = (e.pos, e.siz);
        e.key_len = DEAD;
        self.live -= 1;
        if self.entries.len() > 1024 && self.live < self.entries.len() / 2 {
            self.squeeze();
        }
        Some(out)
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
}
