//! [`AsyncShelf`]: a shelf for tokio programs (feature `tokio`).
//!
//! Every backend does blocking file or network I/O, so each call runs the
//! ordinary [`Shelf`] method on tokio's blocking pool
//! ([`spawn_blocking`](tokio::task::spawn_blocking)) and the async worker
//! threads never wait on a disk.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;

use crate::{DynShelf, Error, KvBackend, OpenError, OpenOptions, Protocol, Shelf, Value};

/// The name [`Error::Backend`] and [`OpenError::Backend`] carry when the
/// failure was tokio's rather than the storage engine's: the source is then
/// a [`TaskError`].
pub const TASK_BACKEND: &str = "tokio";

/// Why a call of an [`AsyncShelf`] did not run to its end, carried as the
/// `source` of an [`Error::Backend`] (or [`OpenError::Backend`]) whose
/// `backend` is [`TASK_BACKEND`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The call panicked on the blocking pool. The shelf stays usable: the
    /// backends shield their engines' panics, so this is a bug in a closure
    /// given to [`AsyncShelf::with_shelf`] or in shelf itself.
    #[error("the call panicked: {message}")]
    Panicked {
        /// The panic's message, where it was a string.
        message: String,
    },
    /// The tokio runtime is shutting down and runs no new blocking tasks.
    #[error("the tokio runtime is shutting down")]
    ShuttingDown,
    /// The call was made outside a tokio runtime.
    #[error("no tokio runtime is running (call it from a task of a tokio runtime)")]
    NoRuntime,
}

impl TaskError {
    fn into_error(self, operation: &'static str) -> Error {
        Error::Backend { backend: TASK_BACKEND, operation, source: Box::new(self) }
    }
}

/// A shelf shared between tokio tasks: the methods of [`Shelf`], async,
/// each run on tokio's blocking pool.
///
/// Cloning is cheap (an [`Arc`]): every clone is the same open shelf, so it
/// can be a web service's state. Reads (`get`, `contains_key`, `len`,
/// `keys`...) run side by side; a write waits for them and runs alone. The
/// lock is fair (calls are served in the order they were made), and each
/// call runs to its end even when its future is dropped, so a timeout never
/// leaves half a write.
///
/// Keys are anything `AsRef<[u8]>` (copied to move them to the blocking
/// pool); values are moved in (`insert(key, value)`, as
/// [`HashMap::insert`](std::collections::HashMap::insert)) and out, so they
/// are `Send + 'static`. Listings ([`keys`](Self::keys),
/// [`items`](Self::items), [`values`](Self::values)) are collected: a
/// stream holding the shelf between awaits would deadlock a caller who
/// reads the shelf while walking it. To walk a large shelf in bounded
/// memory, do it on the blocking pool with [`with_shelf`](Self::with_shelf).
///
/// Call [`close`](Self::close) when done, to see its errors; dropping the
/// last clone closes the shelf on the dropping thread, which then waits for
/// the final sync.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let shelf = shelf::AsyncShelf::open(dir.path().join("db")).await?;
/// let task = {
///     let shelf = shelf.clone(); // the same shelf, for another task
///     tokio::spawn(async move { shelf.insert("count", 2u32).await })
/// };
/// task.await??;
/// assert_eq!(shelf.get::<u32>("count").await?, Some(2));
/// shelf.close().await?;
/// assert!(matches!(shelf.len().await, Err(shelf::Error::Closed)));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Each method fails as its [`Shelf`] namesake does, and with
/// [`Error::Backend`] naming [`TASK_BACKEND`] and a [`TaskError`] when the
/// call panicked, the runtime is shutting down, or no runtime runs.
pub struct AsyncShelf<B: KvBackend + 'static = Box<dyn KvBackend>> {
    // A read-write lock: `Shelf` is `Sync` (every backend is), so reads
    // (get, contains_key, len, keys...) share the read side and run side
    // by side on the pool; writes take the write side.
    // tokio's lock rather than std's: a waiting call parks its task instead
    // of a blocking-pool thread, and the guard moves into the blocking task.
    shelf: Arc<RwLock<Shelf<B>>>,
    protocol: Protocol,
    path: Arc<Path>,
}

impl<B: KvBackend + 'static> Clone for AsyncShelf<B> {
    fn clone(&self) -> Self {
        AsyncShelf { shelf: Arc::clone(&self.shelf), protocol: self.protocol, path: Arc::clone(&self.path) }
    }
}

impl<B: KvBackend + 'static> std::fmt::Debug for AsyncShelf<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncShelf")
            .field("protocol", &self.protocol)
            .field("path", &self.path)
            .field("handles", &Arc::strong_count(&self.shelf))
            .finish()
    }
}

impl<B: KvBackend + 'static> From<Shelf<B>> for AsyncShelf<B> {
    fn from(shelf: Shelf<B>) -> Self {
        AsyncShelf::new(shelf)
    }
}

impl AsyncShelf {
    /// Opens the shelf at `path` on the blocking pool, as [`crate::open`]
    /// (flag `c`, the backend detected or the default).
    ///
    /// # Errors
    /// As [`OpenOptions::open`], and [`OpenError::Backend`] naming
    /// [`TASK_BACKEND`] with a [`TaskError`].
    pub async fn open(path: impl AsRef<Path>) -> Result<AsyncShelf, OpenError> {
        OpenOptions::new().open_async(path).await
    }
}

impl OpenOptions {
    /// [`open`](Self::open) on tokio's blocking pool, giving an
    /// [`AsyncShelf`] (feature `tokio`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shelf::{OpenOptions, Protocol};
    /// let dir = tempfile::tempdir()?;
    /// let shelf = OpenOptions::new().protocol(Protocol::json()).open_async(dir.path().join("db")).await?;
    /// shelf.insert("k", vec![1, 2]).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`OpenError::Backend`] naming
    /// [`TASK_BACKEND`] with a [`TaskError`].
    pub async fn open_async(&self, path: impl AsRef<Path>) -> Result<AsyncShelf, OpenError> {
        let options = self.clone();
        let path = path.as_ref().to_owned();
        let shown = path.clone();
        let opened = run_blocking(move || options.open(path)).await;
        let shelf: DynShelf = match opened {
            Ok(result) => result?,
            Err(task) => {
                return Err(OpenError::Backend {
                    backend: TASK_BACKEND,
                    path: shown,
                    source: Box::new(task),
                });
            }
        };
        Ok(AsyncShelf::new(shelf))
    }
}

impl<B: KvBackend + 'static> AsyncShelf<B> {
    /// Shares an open shelf between tasks.
    pub fn new(shelf: Shelf<B>) -> Self {
        let protocol = shelf.protocol();
        let path: PathBuf = shelf.path().to_owned();
        AsyncShelf { shelf: Arc::new(RwLock::new(shelf)), protocol, path: path.into() }
    }

    /// The protocol values are stored with.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The path the shelf was opened from (empty for memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the shelf on the blocking pool, no other call running
    /// meanwhile: for what has no async namesake here ([`Shelf::get_mut`]
    /// with writeback, [`Shelf::backend_mut`], a walk of a large shelf in
    /// bounded memory, several operations without another task's call in
    /// between).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let shelf = shelf::AsyncShelf::open(dir.path().join("db")).await?;
    /// // Count the keys with a prefix without collecting them.
    /// let users = shelf
    ///     .with_shelf(|s| {
    ///         let mut n = 0;
    ///         for key in s.keys()? {
    ///             n += usize::from(key?.starts_with("user:"));
    ///         }
    ///         Ok(n)
    ///     })
    ///     .await?;
    /// assert_eq!(users, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// What `f` returns, and [`Error::Backend`] naming [`TASK_BACKEND`]
    /// with a [`TaskError`] (a panic in `f` is [`TaskError::Panicked`]).
    pub async fn with_shelf<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut Shelf<B>) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        self.call("run a closure", f).await
    }

    /// Takes the shelf's lock and runs `f` on the blocking pool.
    async fn call<R, F>(&self, operation: &'static str, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut Shelf<B>) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        // Waiting for the lock parks this task, not a pool thread; the
        // guard then travels with the work, so the call finishes (and
        // releases the lock) even if this future is dropped.
        let mut guard = Arc::clone(&self.shelf).write_owned().await;
        match run_blocking(move || f(&mut guard)).await {
            Ok(result) => result,
            Err(task) => Err(task.into_error(operation)),
        }
    }

    /// As [`call`](Self::call), for a read: shares the lock with other
    /// reads, so they run in parallel.
    async fn read<R, F>(&self, operation: &'static str, f: F) -> Result<R, Error>
    where
        F: FnOnce(&Shelf<B>) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let guard = Arc::clone(&self.shelf).read_owned().await;
        match run_blocking(move || f(&guard)).await {
            Ok(result) => result,
            Err(task) => Err(task.into_error(operation)),
        }
    }

    /// `s[key]`: the value of `key` as a `T`, or `None`
    /// ([`Shelf::get`]).
    ///
    /// # Errors
    /// As [`Shelf::get`]; see [`AsyncShelf`].
    pub async fn get<T>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key = key.as_ref().to_vec();
        self.read("get", move |s| s.get(key)).await
    }

    /// The value of `key`, or `default` ([`Shelf::get_or`]).
    ///
    /// # Errors
    /// As [`Shelf::get_or`]; see [`AsyncShelf`].
    pub async fn get_or<T>(&self, key: impl AsRef<[u8]>, default: T) -> Result<T, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key = key.as_ref().to_vec();
        self.read("get", move |s| s.get_or(key, default)).await
    }

    /// The stored bytes of `key`, undecoded ([`Shelf::get_bytes`]).
    ///
    /// # Errors
    /// As [`Shelf::get_bytes`]; see [`AsyncShelf`].
    pub async fn get_bytes(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        let key = key.as_ref().to_vec();
        self.read("get", move |s| s.get_bytes(key)).await
    }

    /// `s[key] = value` ([`Shelf::insert`]); the value is moved to the
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Shelf::insert`]; see [`AsyncShelf`].
    pub async fn insert<T>(&self, key: impl AsRef<[u8]>, value: T) -> Result<(), Error>
    where
        T: Serialize + Send + 'static,
    {
        let key = key.as_ref().to_vec();
        self.call("insert", move |s| s.insert(key, &value)).await
    }

    /// `del s[key]`: whether `key` was there ([`Shelf::remove`]).
    ///
    /// # Errors
    /// As [`Shelf::remove`]; see [`AsyncShelf`].
    pub async fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref().to_vec();
        self.call("remove", move |s| s.remove(key)).await
    }

    /// `s.pop(key)` ([`Shelf::pop`]).
    ///
    /// # Errors
    /// As [`Shelf::pop`]; see [`AsyncShelf`].
    pub async fn pop<T>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key = key.as_ref().to_vec();
        self.call("pop", move |s| s.pop(key)).await
    }

    /// `s.setdefault(key, default)` ([`Shelf::set_default`]).
    ///
    /// # Errors
    /// As [`Shelf::set_default`]; see [`AsyncShelf`].
    pub async fn set_default<T>(&self, key: impl AsRef<[u8]>, default: T) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let key = key.as_ref().to_vec();
        self.call("set_default", move |s| s.set_default(key, default)).await
    }

    /// The values of `keys`, in order, in one backend call
    /// ([`Shelf::get_many`]).
    ///
    /// # Errors
    /// As [`Shelf::get_many`]; see [`AsyncShelf`].
    pub async fn get_many<T, K>(&self, keys: impl IntoIterator<Item = K>) -> Result<Vec<Option<T>>, Error>
    where
        T: DeserializeOwned + Send + 'static,
        K: AsRef<[u8]>,
    {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self.read("get_many", move |s| s.get_many(&keys)).await
    }

    /// Removes every key of `keys` in one batch ([`Shelf::remove_many`]).
    ///
    /// # Errors
    /// As [`Shelf::remove_many`]; see [`AsyncShelf`].
    pub async fn remove_many<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<(), Error> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self.call("remove_many", move |s| s.remove_many(&keys)).await
    }

    /// `s.update(pairs)` ([`Shelf::update`], [`Shelf::insert_many`]), in one
    /// call: no other task's call runs between the pairs.
    ///
    /// # Errors
    /// As [`Shelf::update`]; see [`AsyncShelf`].
    pub async fn update<K, T>(&self, pairs: impl IntoIterator<Item = (K, T)>) -> Result<(), Error>
    where
        K: AsRef<[u8]>,
        T: Serialize + Send + 'static,
    {
        let pairs: Vec<(Vec<u8>, T)> = pairs.into_iter().map(|(k, v)| (k.as_ref().to_vec(), v)).collect();
        self.call("update", move |s| s.update(pairs.iter().map(|(k, v)| (k, v)))).await
    }

    /// `k in s` ([`Shelf::contains_key`]).
    ///
    /// # Errors
    /// As [`Shelf::contains_key`]; see [`AsyncShelf`].
    pub async fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = key.as_ref().to_vec();
        self.read("contains_key", move |s| s.contains_key(key)).await
    }

    /// `len(s)` ([`Shelf::len`]).
    ///
    /// # Errors
    /// As [`Shelf::len`]; see [`AsyncShelf`].
    pub async fn len(&self) -> Result<usize, Error> {
        self.read("len", |s| s.len()).await
    }

    /// `not s` ([`Shelf::is_empty`]).
    ///
    /// # Errors
    /// As [`Shelf::is_empty`]; see [`AsyncShelf`].
    pub async fn is_empty(&self) -> Result<bool, Error> {
        self.read("is_empty", |s| s.is_empty()).await
    }

    /// Every key, collected (`list(s)`; see [`Shelf::keys`] and, for
    /// bounded memory, [`with_shelf`](Self::with_shelf)).
    ///
    /// # Errors
    /// As [`Shelf::keys`], the first error of the walk; see [`AsyncShelf`].
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        self.read("keys", |s| s.keys()?.collect()).await
    }

    /// Every key with its value as a `T`, collected ([`Shelf::items`]).
    ///
    /// # Errors
    /// As [`Shelf::items`], the first error of the walk; see [`AsyncShelf`].
    pub async fn items<T>(&self) -> Result<Vec<(String, T)>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.read("items", |s| s.items::<T>()?.collect()).await
    }

    /// Every value as a `T`, collected ([`Shelf::values`]).
    ///
    /// # Errors
    /// As [`Shelf::values`], the first error of the walk; see
    /// [`AsyncShelf`].
    pub async fn values<T>(&self) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.read("values", |s| s.values::<T>()?.collect()).await
    }

    /// Every entry with its value as a [`Value`], collected: what
    /// `for (k, v) in &shelf` walks ([`Shelf::iter`]), each value with its
    /// own result.
    ///
    /// # Errors
    /// [`Error::Closed`]; see [`AsyncShelf`]. An error of the walk itself
    /// ends the list as an entry with an empty key, as in [`Shelf::iter`].
    pub async fn iter(&self) -> Result<Vec<(String, Result<Value, Error>)>, Error> {
        self.read("iter", |s| {
            // A closed shelf is an error of the call, not an entry.
            s.backend()?;
            Ok(s.iter().collect())
        })
        .await
    }

    /// `s.clear()` ([`Shelf::clear`]).
    ///
    /// # Errors
    /// As [`Shelf::clear`]; see [`AsyncShelf`].
    pub async fn clear(&self) -> Result<(), Error> {
        self.call("clear", |s| s.clear()).await
    }

    /// `s.sync()`: the durability point ([`Shelf::sync`]).
    ///
    /// # Errors
    /// As [`Shelf::sync`]; see [`AsyncShelf`].
    pub async fn sync(&self) -> Result<(), Error> {
        self.call("sync", |s| s.sync()).await
    }

    /// `s.close()` for every clone: afterwards each call is
    /// [`Error::Closed`] ([`Shelf::close`]).
    ///
    /// # Errors
    /// As [`Shelf::close`]; see [`AsyncShelf`].
    pub async fn close(&self) -> Result<(), Error> {
        self.call("close", |s| s.close()).await
    }

    /// Whether [`close`](Self::close) has been called (waits for the calls
    /// before it).
    pub async fn is_closed(&self) -> bool {
        self.shelf.read().await.is_closed()
    }
}

/// Runs `f` on the current runtime's blocking pool; tokio's failures
/// (a panic, a runtime going away) become a [`TaskError`], never a panic
/// here.
async fn run_blocking<R, F>(f: F) -> Result<R, TaskError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // `tokio::task::spawn_blocking` panics outside a runtime.
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TaskError::NoRuntime)?;
    match runtime.spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => Err(TaskError::Panicked { message: panic_message(e.into_panic()) }),
        // Cancelled: a blocking task is only ever cancelled by shutdown.
        Err(_) => Err(TaskError::ShuttingDown),
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "a panic without a message".to_owned(),
        },
    }
}

// AsyncShelf is web-service state: it must cross tasks and threads.
const _: fn() = || {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<AsyncShelf>();
};
