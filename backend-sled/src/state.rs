//! Layout 2's record of flushes: the state record in the metadata tree
//! (the number of entries, the flush generation, a clean flag) and the
//! marker file beside sled's, which together tell a crash from a log that
//! lost a completed flush.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use shelf_core::raw::{self, ValueForm};
use shelf_core::{Error, OpenError};

use crate::{SledBackend, err};

/// The key of the state record in the metadata tree of a layout 2
/// database: the number of entries, the flush generation and a clean flag
/// (see the crate docs, "Damage").
pub const STATE_KEY: &[u8] = b"\xffshelf:state";

/// The marker file inside a layout 2 database directory: [`MARKER_MAGIC`],
/// the generation of the last completed flush (eight little-endian bytes)
/// and a CRC-32 of both (four little-endian bytes).
pub const MARKER_FILE: &str = "shelf-sled";

/// The first bytes of [`MARKER_FILE`].
pub const MARKER_MAGIC: &[u8] = b"shelf-sled\n";

/// The marker file being replaced: written, synced, then renamed over
/// [`MARKER_FILE`]; one left by a crash is overwritten by the next flush.
const MARKER_TEMP: &str = "shelf-sled.tmp";

/// The state record of a layout 2 database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) count: u64,
    pub(crate) generation: u64,
    pub(crate) clean: bool,
}

impl State {
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17);
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.push(self.clean as u8);
        raw::seal(STATE_KEY, &b)
    }

    pub(crate) fn decode(stored: &[u8]) -> Option<State> {
        let b = raw::unseal(STATE_KEY, stored)?;
        if b.len() != 17 || b[16] > 1 {
            return None;
        }
        Some(State {
            count: u64::from_le_bytes(b[..8].try_into().ok()?),
            generation: u64::from_le_bytes(b[8..16].try_into().ok()?),
            clean: b[16] == 1,
        })
    }
}

/// Reads the generation in [`MARKER_FILE`] (0 when the file is absent).
pub(crate) fn read_marker(dir: &Path) -> Result<u64, OpenError> {
    let file = dir.join(MARKER_FILE);
    let bytes = match fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(OpenError::io(file, e)),
    };
    let sound = bytes.len() == MARKER_MAGIC.len() + 12 && bytes.starts_with(MARKER_MAGIC);
    let (body, crc) = bytes.split_at(bytes.len().saturating_sub(4));
    if !sound || crc32fast::hash(body).to_le_bytes() != crc {
        return Err(OpenError::Corrupted { path: file, detail: "shelf's marker file is damaged".to_owned() });
    }
    let generation = body[MARKER_MAGIC.len()..].try_into().map(u64::from_le_bytes).unwrap_or(0);
    Ok(generation)
}

/// Replaces [`MARKER_FILE`] with one holding `generation`.
pub(crate) fn write_marker(dir: &Path, generation: u64) -> std::io::Result<()> {
    let mut body = MARKER_MAGIC.to_vec();
    body.extend_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let temp = dir.join(MARKER_TEMP);
    let mut f = fs::File::create(&temp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    fs::rename(&temp, dir.join(MARKER_FILE))
}

impl SledBackend {
    /// Before a write that may change the entries: in layout 2, a state
    /// record saying "not clean" goes into the log ahead of it, so a crash
    /// before the next flush is not mistaken for damage.
    pub(crate) fn before_write(&mut self) -> Result<(), Error> {
        if self.form == ValueForm::Plain || self.dirty {
            return Ok(());
        }
        let open = self.engine_for("write")?;
        let state = State { count: self.count.unwrap_or(0), generation: self.generation, clean: false };
        self.damage.shield("write the state record", || {
            open.meta.insert(STATE_KEY, state.encode()).map(drop).map_err(err("write the state record"))
        })?;
        self.dirty = true;
        Ok(())
    }

    /// Flushes sled; in layout 2, after writes, with a clean state record
    /// and then a marker file of the new generation.
    pub(crate) fn flush_all(&mut self) -> Result<(), Error> {
        let open = self.handle()?;
        if !(self.form.is_sealed() && self.dirty) {
            // sled's flush writes every dirty buffer and fsyncs the `db` file.
            return self.damage.shield("flush", || open.db.flush().map(drop).map_err(err("flush")));
        }
        let count = self.count.ok_or_else(|| self.damage.corrupted("the number of entries is unknown"))?;
        let generation = self.generation + 1;
        let state = State { count, generation, clean: true };
        self.damage.shield("write the state record", || {
            open.meta.insert(STATE_KEY, state.encode()).map(drop).map_err(err("write the state record"))
        })?;
        // From here on the log's last state record is clean: the next write
        // must write a "not clean" one again, even if this flush fails.
        self.dirty = false;
        self.generation = generation;
        let open = self.handle()?;
        self.damage.shield("flush", || open.db.flush().map(drop).map_err(err("flush")))?;
        let path = self.damage.path();
        write_marker(path, generation).map_err(|e| Error::io(path.join(MARKER_FILE), e))
    }
}
