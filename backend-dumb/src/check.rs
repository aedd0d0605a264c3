//! `check`: entries that point past the end of `.dat` or overlap another,
//! and the lines a salvaging open skipped; a repair drops them and commits.

use shelf_core::raw::show_key;
use shelf_core::{CheckReport, Error, KvBackend};

use crate::{DumbBackend, Salvaged};

impl DumbBackend {
    /// `check`, once the guards have let it through.
    pub(crate) fn check_index(&mut self, repair: bool) -> Result<CheckReport, Error> {
        let mut problems = self.salvaged.problems.clone();
        let mut bad: Vec<Vec<u8>> = Vec::new();
        {
            let st = self.st.read();
            let mut spans: Vec<(u64, u64, usize, &[u8])> = Vec::new();
            for (order, (key, pos, siz)) in st.index.iter().enumerate() {
                match pos.checked_add(siz) {
                    Some(end) if end <= st.dat_len() => {
                        if siz > 0 {
                            spans.push((pos, end, order, key));
                        }
                    }
                    _ => {
                        problems.push(format!(
                            "{}: key {} points past the end of {} ({pos} + {siz} > {} bytes)",
                            self.paths.dir.display(),
                            show_key(key),
                            self.paths.dat.display(),
                            st.dat_len()
                        ));
                        bad.push(key.to_vec());
                    }
                }
            }
            spans.sort_unstable();
            // The entry reaching furthest so far, to compare each next one with.
            let mut reach: Option<(u64, usize, &[u8])> = None;
            for &(pos, end, order, key) in &spans {
                if let Some((r_end, r_order, r_key)) = reach
                    && pos < r_end
                {
                    problems.push(format!(
                        "{}: keys {} and {} overlap in {}",
                        self.paths.dir.display(),
                        show_key(r_key),
                        show_key(key),
                        self.paths.dat.display()
                    ));
                    // The one written earlier (earlier in the index) is the
                    // one whose bytes were overwritten.
                    bad.push(if r_order < order { r_key.to_vec() } else { key.to_vec() });
                }
                if reach.is_none_or(|(r_end, _, _)| end > r_end) {
                    reach = Some((end, order, key));
                }
            }
        }
        bad.sort();
        bad.dedup();
        let good = self.st.read().index.len() - bad.len();
        let repaired = repair && !problems.is_empty();
        if !repaired {
            return Ok(CheckReport::new(good as u64, problems, false));
        }
        for key in &bad {
            self.st.get_mut().index.remove(key);
        }
        // The repaired index is written under a temporary name and renamed
        // over `.dir` (see `commit`): a crash leaves the old or the new one.
        self.modified = true;
        self.flush()?;
        // Dropped: the entries removed now, and those the salvaging open
        // already left out (a later entry of the same key may stand).
        let mut dropped = bad;
        let st = self.st.get_mut();
        dropped.extend(self.salvaged.keys.drain(..).filter(|k| st.index.get(k).is_none()));
        dropped.sort();
        dropped.dedup();
        self.salvaged = Salvaged::default();
        Ok(CheckReport::new(good as u64, problems, true).with_dropped_keys(dropped))
    }
}
