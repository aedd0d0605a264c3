//! The row of one backend's shelf: every workload through [`DynShelf`],
//! as an application would run them.

use std::time::Instant;

use serde_bytes::ByteBuf;
use shelf::{DynShelf, Flag, OpenOptions, Protocol};

use super::{
    BUDGET, Data, Place, READ_BUDGET, best_of, location, parallel, row_label, size_of, timed, timing,
    within_budget,
};
use crate::db;
use crate::error::CliError;
use crate::report::{BackendResult, RowKind};

/// Runs every workload on backend `name` at `place`, with `protocol` (the
/// backend's own choice when `None`).
pub(super) fn run(
    name: &str,
    protocol: Option<Protocol>,
    place: &Place,
    data: &Data,
) -> Result<BackendResult, CliError> {
    let label = row_label(name, protocol.as_ref());
    let path = location(place);
    let n = data.n();
    let ctx = |e: CliError| e.context(format!("bench of {label}"));
    let open = |flag: Flag| -> Result<DynShelf, CliError> {
        let mut o = OpenOptions::new();
        o.flag(flag).backend(name);
        if let Some(p) = &protocol {
            o.protocol(*p);
        }
        o.open(&path).map_err(|e| ctx(e.into()))
    };
    let bar = db::progress(Some(super::WORKLOADS.len() as u64), &label);
    let step = |w: &str| {
        bar.set_message(format!("{label} {w}"));
    };
    let mut timings = Vec::new();
    let mut notes = Vec::new();
    let values: Vec<ByteBuf> = data.values.iter().map(|v| ByteBuf::from(v.clone())).collect();
    let fresh: Vec<ByteBuf> = data.fresh.iter().map(|v| ByteBuf::from(v.clone())).collect();

    let mut s = open(Flag::New)?;
    let protocol_name = s.protocol().name().to_owned();
    let caps = s.capabilities()?;

    step("insert");
    let ((), d) = timed(|| {
        for (k, v) in data.keys.iter().zip(&values) {
            s.insert(k, v)?;
        }
        Ok(s.sync()?)
    })
    .map_err(ctx)?;
    timings.push(timing("insert", n as u64, d));
    bar.inc(1);

    step("get");
    let (done, d) = best_of(|| timed(|| read_all(&s, data, &data.order))).map_err(ctx)?;
    if done < n as u64 {
        notes.push(format!("get stopped after {} s at {done} of {n} keys", READ_BUDGET.as_secs()));
    }
    timings.push(timing("get", done, d));
    bar.inc(1);

    step("get-2t");
    // Two readers measure how the engine and the handle share reads, which
    // the protocol does not change: a pickle row skips them to save time.
    let two = protocol
        .is_none()
        .then(|| best_of(|| parallel::two_threads(|order| read_all(&s, data, order), data)));
    if let Some(r) = two {
        notes.push("get-2t: 2 threads on one shared handle".to_owned());
        let (done, d) = r.map_err(ctx)?;
        if done < 2 * n as u64 {
            notes.push(format!(
                "get-2t stopped after {} s at {done} of {} gets",
                READ_BUDGET.as_secs(),
                2 * n
            ));
        }
        timings.push(timing("get-2t", done, d));
    }
    bar.inc(1);

    step("get-many");
    let (found, d) = best_of(|| {
        timed(|| {
            let keys: Vec<&[u8]> = data.order.iter().map(|&i| data.keys[i].as_bytes()).collect();
            let mut found = 0u64;
            for v in s.get_many::<ByteBuf, _>(&keys)?.into_iter().flatten() {
                found += u64::from(v.len() == data.value_size);
            }
            Ok(found)
        })
    })
    .map_err(ctx)?;
    if found != n as u64 {
        return Err(ctx(CliError::data(format!("get-many found {found} of {n} values intact"))));
    }
    timings.push(timing("get-many", n as u64, d));
    bar.inc(1);

    step("overwrite");
    let (done, d) = timed(|| {
        // The CPython rows' budget: a rename over an existing file frees
        // its blocks, slow on some file systems (dir).
        let done = within_budget(&data.order, |&i| {
            s.insert(&data.keys[i], &fresh[i])?;
            Ok(())
        })?;
        s.sync()?;
        Ok(done)
    })
    .map_err(ctx)?;
    if done < n {
        notes.push(format!("overwrite stopped after {} s at {done} of {n} keys", BUDGET.as_secs()));
    }
    timings.push(timing("overwrite", done as u64, d));
    bar.inc(1);

    step("iterate");
    let (seen, d) = best_of(|| {
        timed(|| {
            let mut seen = 0u64;
            for item in s.items::<ByteBuf>()? {
                let (_, v) = item?;
                seen += u64::from(v.len() == data.value_size);
            }
            Ok(seen)
        })
    })
    .map_err(ctx)?;
    if seen != n as u64 {
        return Err(ctx(CliError::data(format!("iterate saw {seen} of {n} values intact"))));
    }
    timings.push(timing("iterate", n as u64, d));
    bar.inc(1);

    step("reopen");
    s.close().map_err(|e| ctx(e.into()))?;
    let (reopened, d) = timed(|| {
        let s = open(Flag::Write)?;
        let len = s.len()?;
        Ok((s, len))
    })?;
    let (mut s, len) = reopened;
    if len != n {
        return Err(ctx(CliError::data(format!("reopened with {len} of {n} keys"))));
    }
    timings.push(timing("reopen", n as u64, d));
    bar.inc(1);

    step("delete");
    let half = n / 2;
    let (done, d) = timed(|| {
        // The same budget as the CPython rows.
        let done = within_budget(&data.order[..half], |&i| {
            s.remove(&data.keys[i])?;
            Ok(())
        })?;
        s.sync()?;
        Ok(done)
    })
    .map_err(ctx)?;
    if done < half {
        notes.push(format!("delete stopped after {} s at {done} of {half} keys", BUDGET.as_secs()));
    }
    timings.push(timing("delete", done as u64, d));
    bar.inc(1);

    let bytes_after_sync = size_of(place);
    let bytes_after_compact = match place {
        Place::Dir(_) if caps.compact => {
            s.backend_mut()?.compact().map_err(|e| ctx(e.into()))?;
            s.sync()?;
            size_of(place)
        }
        _ => None,
    };
    s.close().map_err(|e| ctx(e.into()))?;
    bar.finish_and_clear();
    Ok(BackendResult {
        backend: name.to_owned(),
        kind: RowKind::Shelf,
        engine: name.to_owned(),
        protocol: protocol_name,
        timings,
        bytes_after_sync,
        bytes_after_compact,
        notes,
        row_seconds: None,
    })
}

/// Gets the keys of `order` from `s` one by one, for at most
/// [`READ_BUDGET`]; returns how many it got. A key missing or a value of
/// the wrong size is an error: a bench never reports a misread as speed.
pub(super) fn read_all(s: &DynShelf, data: &Data, order: &[usize]) -> Result<u64, CliError> {
    let start = Instant::now();
    let mut done = 0u64;
    for &i in order {
        let v: Option<ByteBuf> = s.get(&data.keys[i])?;
        if v.as_ref().map(|v| v.len()) != Some(data.value_size) {
            return Err(CliError::data(format!(
                "get of {} returned {}",
                data.keys[i],
                v.map_or("nothing".to_owned(), |v| format!("{} bytes, not {}", v.len(), data.value_size))
            )));
        }
        done += 1;
        // Checked every 256 gets: a clock read costs as much as a fast get.
        if done.is_multiple_of(256) && start.elapsed() > READ_BUDGET {
            break;
        }
    }
    Ok(done)
}
