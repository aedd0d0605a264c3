//! The `get-2t` workload: two threads reading at once through one shared
//! handle (as a web service with an `Arc<Shelf>` does), each all N keys in
//! its own random order; ops/s is both threads' gets over the wall time.
//! Engines whose handles cannot be shared (a SQLite connection) get one
//! per thread, opened before the clock starts.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::Data;
use crate::error::CliError;

/// Runs `read` on two threads at once, over the two random orders;
/// returns the gets that came back whole and the wall time, timed from the
/// moment both threads are ready.
pub(super) fn two_threads(
    read: impl Fn(&[usize]) -> Result<u64, CliError> + Sync,
    data: &Data,
) -> Result<(u64, Duration), CliError> {
    let (a, b, d) = race(|| Ok(()), |(), order| read(order), data)?;
    Ok((a? + b?, d))
}

/// `get-2t` with a handle per thread, each made by `open` before the
/// clock starts, `read` reading an order through it. `Err` when a handle
/// cannot be opened; the inner result is the reads'.
pub(super) fn separate_readers_with<H>(
    open: impl Fn() -> Result<H, CliError> + Sync,
    read: impl Fn(H, &[usize]) -> Result<u64, CliError> + Sync,
    data: &Data,
) -> Result<Result<(u64, Duration), CliError>, CliError> {
    let (a, b, d) = race(open, read, data)?;
    Ok(match (a, b) {
        (Ok(a), Ok(b)) => Ok((a + b, d)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// Two threads: each runs `setup` (untimed), waits for the other, then
/// runs `work` over its order. `Err` when a setup fails; otherwise both
/// works' results and the wall time from the start signal to both ends.
#[allow(clippy::type_complexity)]
fn race<H>(
    setup: impl Fn() -> Result<H, CliError> + Sync,
    work: impl Fn(H, &[usize]) -> Result<u64, CliError> + Sync,
    data: &Data,
) -> Result<(Result<u64, CliError>, Result<u64, CliError>, Duration), CliError> {
    let ready = Barrier::new(3);
    let go = Barrier::new(3);
    std::thread::scope(|scope| {
        let spawn = |first: bool| {
            let order: &[usize] = if first { &data.order } else { &data.order2 };
            let (setup, work, ready, go) = (&setup, &work, &ready, &go);
            scope.spawn(move || {
                let h = setup();
                ready.wait();
                // Every thread passes both barriers, failed setup or not,
                // so none waits forever.
                go.wait();
                match h {
                    Ok(h) => Ok(work(h, order)),
                    Err(e) => Err(e),
                }
            })
        };
        let a = spawn(true);
        let b = spawn(false);
        ready.wait();
        let start = Instant::now();
        go.wait();
        let joined = |t: std::thread::ScopedJoinHandle<'_, Result<Result<u64, CliError>, CliError>>| {
            t.join().unwrap_or_else(|_| Err(CliError::env("bench: a reader thread panicked")))
        };
        let (a, b) = (joined(a), joined(b));
        let d = start.elapsed();
        Ok((a?, b?, d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        Data {
            keys: vec!["a".into(), "b".into(), "c".into()],
            values: vec![vec![1]; 3],
            fresh: vec![vec![2]; 3],
            order: vec![2, 0, 1],
            order2: vec![1, 2, 0],
            value_size: 1,
        }
    }

    #[test]
    fn both_threads_read_their_own_order() {
        let data = data();
        let seen = std::sync::Mutex::new(Vec::new());
        let (found, _) = two_threads(
            |order| {
                seen.lock().unwrap().push(order.to_vec());
                Ok(order.len() as u64)
            },
            &data,
        )
        .expect("reads");
        assert_eq!(found, 6, "both threads read every key");
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![vec![1, 2, 0], vec![2, 0, 1]]);
    }

    #[test]
    fn separate_handles_read_and_a_failed_open_is_reported() {
        let data = data();
        let r = separate_readers_with(|| Ok(10u64), |h, order| Ok(h + order.len() as u64), &data);
        assert_eq!(r.expect("opens").expect("reads").0, 26);
        let r = separate_readers_with(
            || Err::<u64, _>(CliError::env("locked")),
            |h, order| Ok(h + order.len() as u64),
            &data,
        );
        assert_eq!(r.err().map(|e| e.message), Some("locked".to_owned()));
    }
}
