//! Damage reporting for engines that keep shelf's own value format (redb,
//! sled): the stored form of a value, and one way to turn a failed
//! checksum, a broken listing or a panic inside the engine into
//! [`Error::Corrupted`] naming the database.

use std::path::{Path, PathBuf};

use super::seal::{seal, seal_into, unseal};
use super::shield::{Shielded, shield};
use super::walk::Walk;
use crate::backend::KvPair;
use crate::error::{Error, OpenError, show_key};

/// How a database stores its values: sealed with a checksum (the current
/// format) or plain (a database written before checksums, read and written
/// as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    /// Values as given.
    Plain,
    /// Each value followed by its [`seal`] over the key and the value.
    Sealed,
}

impl ValueForm {
    /// Whether values carry checksums.
    pub fn is_sealed(self) -> bool {
        self == ValueForm::Sealed
    }

    /// The stored form of `value` under `key`.
    pub fn store(self, key: &[u8], value: &[u8]) -> Vec<u8> {
        match self {
            ValueForm::Plain => value.to_vec(),
            ValueForm::Sealed => seal(key, value),
        }
    }

    /// Appends the stored form of `value` under `key` to `out`.
    pub fn store_into(self, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
        match self {
            ValueForm::Plain => out.extend_from_slice(value),
            ValueForm::Sealed => seal_into(key, value, out),
        }
    }

    /// The value inside `stored`, its checksum verified in the sealed form.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the key when the checksum does not match.
    pub fn open<'a>(self, key: &[u8], stored: &'a [u8], damage: &Damage) -> Result<&'a [u8], Error> {
        match self {
            ValueForm::Plain => Ok(stored),
            ValueForm::Sealed => unseal(key, stored).ok_or_else(|| {
                damage.corrupted(format!("the checksum of key {:?} does not match its bytes", show_key(key)))
            }),
        }
    }
}

/// Where damage is reported: the database's path and the engine's name.
/// Every corruption error of a backend goes through one of these, so they
/// all name the database and word an engine's panic alike.
#[derive(Debug, Clone)]
pub struct Damage {
    path: PathBuf,
    engine: &'static str,
}

impl Damage {
    /// Reports about the database at `path`, kept by `engine` (its registry
    /// name, which also names the engine in messages).
    pub fn new(path: impl Into<PathBuf>, engine: &'static str) -> Self {
        Damage { path: path.into(), engine }
    }

    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`Error::Corrupted`] with `detail`.
    pub fn corrupted(&self, detail: impl Into<String>) -> Error {
        Error::Corrupted { path: self.path.clone(), detail: detail.into() }
    }

    /// The error of a panic inside the engine during `operation`.
    pub fn failed(&self, operation: &str, message: &str) -> Error {
        self.corrupted(format!("{} failed to {operation}: {message}", self.engine))
    }

    /// Runs `f` under [`shield`]: a panic inside the engine (a damaged file
    /// can make it index out of a page) becomes [`Error::Corrupted`],
    /// printing nothing.
    ///
    /// # Errors
    /// `f`'s own, or the panic's.
    pub fn shield<T>(&self, operation: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        shield(f).unwrap_or_else(|message| Err(self.failed(operation, &message)))
    }

    /// Runs one engine open under [`shield`]: a panic becomes
    /// [`OpenError::Corrupted`] saying the engine could not read `what`
    /// ("the file", "the database"); the engine's own result comes back
    /// for the caller to map.
    ///
    /// # Errors
    /// The panic's.
    pub fn shield_open<T, E>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, OpenError> {
        shield(f).map_err(|message| OpenError::Corrupted {
            path: self.path.clone(),
            detail: format!("{} could not read {what} ({message})", self.engine),
        })
    }

    /// An operation's error during an open, as the open's: corruption stays
    /// corruption, anything else is the engine's error naming the database.
    pub fn at_open(&self, e: Error) -> OpenError {
        match e {
            Error::Corrupted { path, detail } => OpenError::Corrupted { path, detail },
            e => OpenError::Backend { backend: self.engine, path: self.path.clone(), source: Box::new(e) },
        }
    }

    /// A listing an engine yields, made safe: every step under [`shield`]
    /// (a panic ends it with an error naming `operation`) and checked by
    /// [`Walk`] for order and, where `expected` gives the number of entries
    /// of a walk over every key, for completeness.
    pub fn listing<I>(
        &self,
        items: I,
        expected: Option<u64>,
        operation: &'static str,
    ) -> impl DoubleEndedIterator<Item = Result<KvPair, Error>> + use<I>
    where
        I: DoubleEndedIterator<Item = Result<KvPair, Error>>,
    {
        let (on_panic, on_damage) = (self.clone(), self.clone());
        let shielded = Shielded::new(items, move |m: String| on_panic.failed(operation, &m));
        Walk::new(shielded, expected, move |detail: String| on_damage.corrupted(detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_store_and_open_and_damage_names_the_key() {
        let damage = Damage::new("db", "engine");
        let sealed = ValueForm::Sealed.store(b"k", b"v");
        assert_eq!(ValueForm::Sealed.open(b"k", &sealed, &damage).unwrap(), b"v");
        let err = ValueForm::Sealed.open(b"j", &sealed, &damage).unwrap_err();
        assert!(err.to_string().contains("the checksum of key"), "{err}");
        assert_eq!(ValueForm::Plain.open(b"j", &sealed, &damage).unwrap(), &sealed[..]);
        let mut out = b"x".to_vec();
        ValueForm::Plain.store_into(b"k", b"v", &mut out);
        assert_eq!(out, b"xv");
    }

    #[test]
    fn a_panicking_listing_ends_in_one_corruption_error() {
        let damage = Damage::new("db", "engine");
        let items = (0..3u8)
            .map(|i| if i == 1 { panic!("bad page") } else { Ok::<KvPair, Error>((vec![i], vec![])) });
        let got: Vec<_> = damage.listing(items, None, "read").collect();
        assert_eq!(got.len(), 2);
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("engine failed to read: bad page"), "{err}");
        let err = damage.shield_open("the file", || -> Result<(), ()> { panic!("boom") }).unwrap_err();
        assert!(err.to_string().contains("engine could not read the file (boom)"), "{err}");
    }
}
