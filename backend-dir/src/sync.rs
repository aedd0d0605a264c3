//! Making the writes since the last flush durable: the files written and
//! the directories whose entries changed.
//!
//! One fsync per file costs a journal commit each (about 400 files/s on a
//! virtual disk), so past a few dozen files a flush asks the kernel once
//! for the whole file system (`syncfs(2)` on Linux), then fsyncs the
//! directories, which is cheap once their changes are on disk and keeps
//! the promise on file systems where `syncfs` would not cover them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

/// Up to this many written files a flush fsyncs them one by one: cheaper
/// than flushing the whole file system, which may hold other programs'
/// dirty pages (on a busy 2-core VM: an fsync about 2.5 ms, a `syncfs`
/// 0.3 to 0.8 s, so the crossover is a few hundred files; 64 keeps small
/// flushes off other programs' writes).
const FSYNC_EACH_MAX: usize = 64;

/// What the next flush has to make durable (paths relative to the root;
/// the empty path is the root).
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

/// Why a flush failed, naming the path it failed on (relative to the
/// root; the empty path is the root or the whole file system).
pub(crate) struct SyncError {
    pub(crate) rel: PathBuf,
    pub(crate) source: io::Error,
}

impl Dirty {
    /// `rel` was written and renamed into `parent`.
    pub(crate) fn wrote(&mut self, rel: &Path, parent: &Path) {
        self.files.insert(rel.to_owned());
        self.dirs.insert(parent.to_owned());
    }

    /// A name was removed from `parent`.
    pub(crate) fn removed(&mut self, parent: &Path) {
        self.dirs.insert(parent.to_owned());
    }

    /// Nothing to flush.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }

    /// Makes every recorded change durable, then forgets them; on an error
    /// they stay recorded, so the next flush tries again.
    ///
    /// `whole_fs` is a descriptor on the root opened when the handle was
    /// (`syncfs` reports the write-back errors of the file system since
    /// that descriptor was opened, so none is missed); without it, or with
    /// few files, each file is fsynced.
    pub(crate) fn sync(&mut self, dir: &Dir, whole_fs: Option<&File>) -> Result<(), SyncError> {
        let synced_fs = match whole_fs {
            Some(f) if self.files.len() > FSYNC_EACH_MAX => {
                syncfs(f).map_err(|source| SyncError { rel: PathBuf::new(), source })?
            }
            _ => false,
        };
        if !synced_fs {
            for rel in &self.files {
                match dir.open(rel) {
                    Ok(f) => f.sync_all(),
                    // Removed since by us or by another process: nothing
                    // to make durable.
                    Err(e) if crate::is_missing(&e) => Ok(()),
                    Err(e) => Err(e),
                }
                .map_err(|source| SyncError { rel: rel.clone(), source })?;
            }
        }
        for rel in &self.dirs {
            let synced = if rel.as_os_str().is_empty() {
                crate::marker::sync_dir(dir)
            } else {
                match dir.open(rel) {
                    Ok(f) => f.sync_all(),
                    Err(e) if crate::is_missing(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            };
            synced.map_err(|source| SyncError { rel: rel.clone(), source })?;
        }
        self.files.clear();
        self.dirs.clear();
        Ok(())
    }
}

/// Flushes the whole file system holding `f`; `Ok(false)` where there is
/// no `syncfs`, so the caller fsyncs file by file.
#[cfg(target_os = "linux")]
fn syncfs(f: &File) -> io::Result<bool> {
    rustix::fs::syncfs(f)?;
    Ok(true)
}

#[cfg(not(target_os = "linux"))]
fn syncfs(_f: &File) -> io::Result<bool> {
    Ok(false)
}

/// The descriptor `syncfs` needs: the root opened for reading (the `Dir`
/// itself is an `O_PATH` descriptor, which `syncfs` refuses).
pub(crate) fn whole_fs_handle(dir: &Dir) -> io::Result<File> {
    Ok(dir.open(".")?.into_std())
}

#[cfg(test)]
mod tests {
    use cap_std::ambient_authority;

    use super::*;

    fn dir_with(files: usize) -> (tempfile::TempDir, Dir, Dirty) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).expect("open root");
        dir.create_dir("sub").expect("mkdir");
        let mut dirty = Dirty::default();
        for i in 0..files {
            let rel = PathBuf::from(format!("sub/f{i}"));
            dir.write(&rel, b"x").expect("write");
            dirty.wrote(&rel, Path::new("sub"));
        }
        dirty.removed(Path::new(""));
        (tmp, dir, dirty)
    }

    #[test]
    fn many_files_take_one_whole_fs_sync_and_few_an_fsync_each() {
        for files in [FSYNC_EACH_MAX, FSYNC_EACH_MAX + 1] {
            let (_tmp, dir, mut dirty) = dir_with(files);
            let whole_fs = whole_fs_handle(&dir).expect("root fd");
            assert!(dirty.sync(&dir, Some(&whole_fs)).is_ok(), "{files} files");
            assert!(dirty.is_empty(), "a flush forgets what it made durable");
        }
    }

    #[test]
    fn files_and_directories_removed_since_are_no_error() {
        let (_tmp, dir, mut dirty) = dir_with(3);
        dir.remove_file("sub/f1").expect("rm");
        dirty.removed(Path::new("gone/deeper"));
        assert!(dirty.sync(&dir, None).is_ok());
        assert!(dirty.is_empty());
    }
}
