//! The workload of the backends' benchmarks: the same keys, values and
//! loops for every engine, so that their figures compare.

use crate::backend::KvBackend;
use crate::error::Error;

/// `n` distinct 16-byte keys in a scrambled order: `k` eight times, then a
/// multiplicative hash (big-endian) of `(i * 48_271 + 11) % n`, a
/// bijection of `0..n` (48,271 is prime; `n` is no multiple of it).
pub fn bench_keys(n: u64) -> Vec<[u8; 16]> {
    (0..n)
        .map(|i| {
            let x = (i * 48_271 + 11) % n.max(1);
            let mut k = [b'k'; 16];
            k[8..].copy_from_slice(&x.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            k
        })
        .collect()
}

/// The 100-byte value of the `i`-th key.
pub fn bench_value(i: usize) -> [u8; 100] {
    [i as u8; 100]
}

/// Inserts every key with its [`bench_value`] into `backend`, then
/// flushes.
///
/// # Errors
/// The backend's.
pub fn bench_fill<B: KvBackend + ?Sized>(backend: &mut B, keys: &[[u8; 16]]) -> Result<(), Error> {
    for (i, k) in keys.iter().enumerate() {
        backend.insert(k, &bench_value(i))?;
    }
    backend.flush()
}

/// Gets every key of `keys` from `backend`: the number found.
///
/// # Errors
/// The backend's.
pub fn bench_get_all<B: KvBackend + ?Sized>(backend: &B, keys: &[[u8; 16]]) -> Result<usize, Error> {
    let mut found = 0;
    for k in keys {
        found += std::hint::black_box(backend.get(k)?).is_some() as usize;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_distinct_and_fill_a_backend() {
        let keys = bench_keys(1000);
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), 1000);
        let mut m = crate::MemoryBackend::new();
        bench_fill(&mut m, &keys).unwrap();
        assert_eq!(bench_get_all(&m, &keys).unwrap(), 1000);
    }
}
