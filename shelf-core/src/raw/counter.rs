//! A commit counter kept as eight little-endian bytes at the start of a
//! file: the one implementation, with one rule for a short file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The counter in `file`: eight little-endian bytes at offset 0. A file
/// shorter than that (created, and never yet written) holds 0.
///
/// # Errors
/// I/O errors reading the file.
pub fn read_counter(file: &File) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => Ok(u64::from_le_bytes(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

/// Writes `value` as the counter of `file` (the caller holds whatever lock
/// makes its read-increment-write atomic, and syncs when it must).
///
/// # Errors
/// I/O errors writing the file.
pub fn write_counter(file: &File, value: u64) -> io::Result<()> {
    file.write_all_at(&value.to_le_bytes(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_counts_zero_and_a_written_one_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("c"))
            .unwrap();
        assert_eq!(read_counter(&f).unwrap(), 0);
        f.write_all_at(&[1, 2, 3], 0).unwrap();
        assert_eq!(read_counter(&f).unwrap(), 0, "a short file is a counter never written");
        write_counter(&f, 41).unwrap();
        assert_eq!(read_counter(&f).unwrap(), 41);
    }
}
