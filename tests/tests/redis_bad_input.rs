//! The bad-input table of the redis backend: bad URLs, servers that are
//! not redis or refuse us, replicas that cannot be had, a cluster that is
//! down, and keys of a shelf damaged by a raw client. Each row must give an
//! error that names the host and never the password, within its time
//! budget, without a panic or a hang (each row runs on a thread of its own
//! and is abandoned, failing the test, when it overruns).
//!
//! Servers are started here on free loopback ports; every row skips with a
//! printed reason where `redis-server` is not installed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backend_redis::RedisBackend;
use shelf::raw::BackendOptions;
use shelf::{Flag, KvBackend};
use shelf_tests::Collected;
use shelf_tests::redis_server::{RedisServer, raw_command, unavailable};
use shelf_tests::skip;

/// The password every row's URL carries; it must appear in no message.
const SECRET: &str = "pw-s3cret-9";

/// The error of a row: its `Display` chain and its `Debug`.
fn shown(e: &(dyn std::error::Error + 'static)) -> String {
    format!("{} | {e:?}", shelf_cli::error::chain(e))
}

/// What a row did: the error it gave (shown), or `None` when it
/// succeeded where it must not.
type Outcome = Option<String>;

/// Runs `row` on a thread and checks the outcome: an error within
/// `budget` naming `host`, without `SECRET`, and (where given) containing
/// `expect`. A panic or an overrun fails with the row's name.
fn check(
    name: &str,
    host: &str,
    expect: &[&str],
    budget: Duration,
    row: impl FnOnce() -> Outcome + Send + 'static,
) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(row());
    });
    let outcome = match rx.recv_timeout(budget + Duration::from_secs(5)) {
        Ok(o) => o,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: hung (no answer within {budget:?} + 5 s)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let why = worker.join().err().map(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            });
            panic!("{name}: panicked: {why:?}");
        }
    };
    let took = started.elapsed();
    let Some(err) = outcome else { panic!("{name}: succeeded; it must be an error") };
    eprintln!("{name} ({:.0} ms): {}", took.as_secs_f64() * 1000.0, err.split(" | ").next().unwrap_or(""));
    assert!(took <= budget, "{name}: took {took:?} (budget {budget:?}): {err}");
    assert!(!err.contains(SECRET), "{name}: the password is in the error: {err}");
    assert!(err.contains(host), "{name}: the error does not name {host}: {err}");
    for e in expect {
        assert!(err.to_lowercase().contains(&e.to_lowercase()), "{name}: no {e:?} in: {err}");
    }
}

/// Opens `url` raw with `flag`; the error, shown.
fn open_err(url: &str, flag: Flag) -> Outcome {
    match RedisBackend::open_url(url, &BackendOptions::with_flag(flag)) {
        Ok(_) => None,
        Err(e) => Some(shown(&e)),
    }
}

/// Opens `url` through the facade (the registry picks the backend by
/// scheme); the error, shown.
fn facade_err(url: &str) -> Outcome {
    match shelf::open(url) {
        Ok(_) => None,
        Err(e) => Some(shown(&e)),
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn bad_urls_are_refused_naming_the_host() {
    // No server needed: refused before connecting.
    let rows: &[(&str, &str, &str)] = &[
        ("port out of range", "redis://u:{S}@127.0.0.1:99999/0", "port"),
        ("port not a number", "redis://u:{S}@127.0.0.1:abc/0", "port"),
        ("database not a number", "redis://u:{S}@127.0.0.1:1/zero", "database"),
        ("database negative", "redis://u:{S}@127.0.0.1:1/-1", "database"),
        ("namespace with a hash tag", "redis://u:{S}@127.0.0.1:1/0?namespace=a{b}", "namespace"),
        ("namespace with a slash", "redis://u:{S}@127.0.0.1:1/0?namespace=a/b", "namespace"),
        ("namespace empty", "redis://u:{S}@127.0.0.1:1/0?namespace=", "namespace"),
        ("timeout not seconds", "redis://u:{S}@127.0.0.1:1/0?timeout=soon", "timeout"),
        ("timeout zero", "redis://u:{S}@127.0.0.1:1/0?timeout=0", "timeout"),
        ("timeout negative", "redis://u:{S}@127.0.0.1:1/0?timeout=-2", "timeout"),
        ("timeout NaN", "redis://u:{S}@127.0.0.1:1/0?timeout=NaN", "timeout"),
        ("timeout infinite", "redis://u:{S}@127.0.0.1:1/0?timeout=inf", "timeout"),
        ("timeout beyond an hour", "redis://u:{S}@127.0.0.1:1/0?timeout=1e9", "timeout"),
        ("replicas negative", "redis://u:{S}@127.0.0.1:1/0?replicas=-1", "replicas"),
        ("replicas not a count", "redis://u:{S}@127.0.0.1:1/0?replicas=all", "replicas"),
        ("replicas beyond u32", "redis://u:{S}@127.0.0.1:1/0?replicas=99999999999", "replicas"),
        ("unknown option", "redis://u:{S}@127.0.0.1:1/0?namespace=a&colour=red", "unknown option"),
        ("not a redis scheme", "http://u:{S}@127.0.0.1:1/0", "scheme"),
        ("no scheme separator", "redis:u:{S}@127.0.0.1:1/0", "scheme"),
    ];
    for (name, url, expect) in rows {
        let url = url.replace("{S}", SECRET);
        let u = url.clone();
        check(name, "127.0.0.1:", &[expect], SECOND, move || open_err(&u, Flag::Create));
        // The facade by URL alone, where the scheme is one the registry
        // knows: the same refusal.
        if url.starts_with("redis://") {
            let u = url.clone();
            check(&format!("{name} (facade)"), "127.0.0.1:", &[expect], SECOND, move || facade_err(&u));
        }
    }
}

/// How a fake server treats one connection.
type Serve = fn(std::net::TcpStream);

/// A listener on a free loopback port that treats each connection with
/// `serve`, on a thread that lives as long as the test binary.
fn fake_server(serve: Serve) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = l.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

#[test]
fn servers_that_are_not_redis_are_bounded_errors() {
    let rows: &[(&str, Serve)] = &[
        ("answers HTTP", |mut s| {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }),
        ("answers binary garbage", |mut s| {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&[0, 0xff, 0x13, b'$', b'-', b'9', b'\r', b'\n', 0xc1]);
            std::thread::sleep(Duration::from_millis(200));
        }),
        ("answers an impossible bulk length", |mut s| {
            let mut buf = [0u8; 512];
            while s.read(&mut buf).is_ok_and(|n| n > 0) {
                let _ = s.write_all(b"$99999999999999999999\r\n");
            }
        }),
        ("closes at once", drop),
        ("accepts and never answers", |s| {
            std::thread::sleep(Duration::from_secs(8));
            drop(s);
        }),
    ];
    for (name, serve) in rows {
        let port = fake_server(*serve);
        let url = format!("redis://:{SECRET}@127.0.0.1:{port}/0?namespace=x&timeout=1");
        let host = format!("127.0.0.1:{port}");
        // One second of timeout per wait: connect, and a reply or two.
        let u = url.clone();
        check(name, &host, &[], 3 * SECOND, move || open_err(&u, Flag::Create));
        let u = url.clone();
        check(&format!("{name} (whichdb)"), &host, &[], 3 * SECOND, move || {
            shelf::whichdb_at(&u).err().map(|e| shown(&e))
        });
    }
}

#[test]
fn authentication_failures_name_the_host_not_the_password() {
    if let Some(why) = unavailable() {
        return skip("authentication_failures", "redis", &why);
    }
    let s = RedisServer::start(&["--requirepass", SECRET]);
    let host = format!("127.0.0.1:{}", s.port);
    let wrong = "pw-wrong-77";
    let rows = [
        ("wrong password", format!("redis://:{wrong}@{host}/0?namespace=a&timeout=1"), "***@"),
        ("no password where one is required", format!("redis://{host}/0?namespace=a&timeout=1"), "auth"),
        ("unknown user", format!("redis://nobody:{SECRET}@{host}/0?namespace=a&timeout=1"), "***@"),
    ];
    for (name, url, expect) in rows {
        let u = url.clone();
        check(name, &host, &[expect], 2 * SECOND, move || {
            open_err(&u, Flag::Create).map(|e| {
                assert!(!e.contains(wrong), "wrong password shown: {e}");
                e
            })
        });
        let u = url.clone();
        check(&format!("{name} (facade)"), &host, &[], 2 * SECOND, move || facade_err(&u));
    }
    // A database number the server does not have.
    let u = format!("redis://:{SECRET}@{host}/99?namespace=a&timeout=1");
    check("database index out of range", &host, &["db"], 2 * SECOND, move || open_err(&u, Flag::Create));
    // TLS asked of a build without it.
    let u = format!("rediss://:{SECRET}@{host}/0?namespace=a&timeout=1");
    check("rediss without TLS support", &host, &[], 2 * SECOND, move || open_err(&u, Flag::Create));
}

#[test]
fn replicas_that_cannot_be_had_time_out_at_sync() {
    if let Some(why) = unavailable() {
        return skip("replicas_that_cannot_be_had", "redis", &why);
    }
    let s = RedisServer::start(&["--requirepass", SECRET]);
    let host = format!("127.0.0.1:{}", s.port);
    let url = format!("redis://:{SECRET}@{host}/0?namespace=w&timeout=1&replicas=1");
    check(
        "replicas=1 on a server without replicas",
        &host,
        &["replica", "timed out"],
        3 * SECOND,
        move || {
            let mut b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Create)).ok()?;
            b.insert(b"k", b"v").ok()?;
            b.flush().err().map(|e| shown(&e))
        },
    );
}

/// A raw client of the server (the test's, not the backend's).
fn raw(s: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(format!("redis://:{SECRET}@127.0.0.1:{}/0", s.port)).expect("a client");
    client.get_connection().expect("a raw connection")
}

/// A shelf at `ns` with keys `k0..k99`, synced and closed.
fn written(s: &RedisServer, ns: &str) -> String {
    let url = format!("redis://:{SECRET}@127.0.0.1:{}/0?namespace={ns}&timeout=1", s.port);
    let mut b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::New)).expect("open");
    for i in 0..100 {
        b.insert(format!("k{i}").as_bytes(), b"value").expect("insert");
    }
    b.close().expect("close");
    url
}

/// Every read of the shelf at `url`, and a write, each as a row that must
/// fail (`Outcome` of the first to fail), none panicking.
fn every_operation_fails(url: &str) -> Outcome {
    let mut b = match RedisBackend::open_url(url, &BackendOptions::with_flag(Flag::Write)) {
        Ok(b) => b,
        Err(e) => return Some(shown(&e)),
    };
    let mut errors = Vec::new();
    if let Err(e) = b.len() {
        errors.push(shown(&e));
    }
    if let Err(e) = b.keys().collected() {
        errors.push(shown(&e));
    }
    if let Err(e) = b.iter().collected() {
        errors.push(shown(&e));
    }
    let all: Vec<Vec<u8>> = (0..100).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
    if let Err(e) = b.get_many(&refs) {
        errors.push(shown(&e));
    }
    let mut gets = 0;
    for k in &all {
        gets += usize::from(b.get(k).is_err());
        let _ = b.contains(k);
    }
    let _ = b.insert(b"k1", b"new");
    let _ = b.flush();
    // Reads were asked of every key: the damaged one must have failed.
    if gets == 0 || errors.len() < 4 {
        panic!("damage went unreported: {gets} get errors, listing/count errors: {errors:?}");
    }
    errors.into_iter().next()
}

#[test]
fn keys_damaged_by_a_raw_client_are_errors() {
    if let Some(why) = unavailable() {
        return skip("keys_damaged_by_a_raw_client", "redis", &why);
    }
    let s = RedisServer::start(&["--requirepass", SECRET]);
    let host = format!("127.0.0.1:{}", s.port);
    let mut c = raw(&s);
    let cmd = |c: &mut redis::Connection, args: &[&[u8]]| {
        let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap_or("PING"));
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<redis::Value>(c).expect("a raw command");
    };
    // The bucket of k1 as a string (WRONGTYPE for every hash command).
    let url = written(&s, "d1");
    let keys: Vec<String> = redis::cmd("KEYS").arg("shelf:{d1/*}").query(&mut c).expect("KEYS");
    let bucket = keys
        .iter()
        .find(|k| redis::cmd("HEXISTS").arg(k.as_str()).arg("k1").query::<bool>(&mut c).unwrap_or(false))
        .expect("the bucket of k1")
        .clone();
    cmd(&mut c, &[b"DEL", bucket.as_bytes()]);
    cmd(&mut c, &[b"SET", bucket.as_bytes(), b"not a hash"]);
    check("a bucket that is a string", &host, &["wrongtype"], 3 * SECOND, move || {
        every_operation_fails(&url)
    });

    // The metadata key as a string, as garbage fields, as a bad bucket count.
    let damage: &[(&str, &[&[u8]], &str)] = &[
        ("metadata key that is a string", &[b"SET", b"shelf:{d2}:meta", b"garbage"], "wrongtype"),
        (
            "metadata of another format",
            &[b"HSET", b"shelf:{d2}:meta", b"format", b"shelf-redis-99"],
            "format",
        ),
        ("metadata without its format", &[b"HDEL", b"shelf:{d2}:meta", b"format"], "format"),
        ("bucket count not a number", &[b"HSET", b"shelf:{d2}:meta", b"buckets", b"many"], "bucket count"),
        ("bucket count zero", &[b"HSET", b"shelf:{d2}:meta", b"buckets", b"0"], "bucket count"),
        ("bucket count huge", &[b"HSET", b"shelf:{d2}:meta", b"buckets", b"4294967295"], "bucket count"),
    ];
    for (name, args, expect) in damage {
        // Flag n refuses a metadata key it does not recognise (it may be
        // someone else's): cleared with the raw client between rows.
        cmd(&mut c, &[b"DEL", b"shelf:{d2}:meta"]);
        let url = written(&s, "d2");
        if args[0] == b"SET" {
            cmd(&mut c, &[b"DEL", args[1]]);
        }
        cmd(&mut c, args);
        for flag in [Flag::Read, Flag::Write, Flag::Create] {
            let u = url.clone();
            check(&format!("{name}, flag {flag}"), &host, &[expect], 2 * SECOND, move || open_err(&u, flag));
        }
        let u = url.clone();
        check(&format!("{name} (facade)"), &host, &[expect], 2 * SECOND, move || facade_err(&u));
    }

    // A value with a header no shelf writes, and one cut short.
    for (name, value) in [
        ("value with an unknown header", &b"\xc1\x07abc"[..]),
        ("value cut in its deadline", b"\xc1\x01\x00"),
    ] {
        let url = written(&s, "d3");
        let keys: Vec<String> = redis::cmd("KEYS").arg("shelf:{d3/*}").query(&mut c).expect("KEYS");
        for k in &keys {
            if redis::cmd("HEXISTS").arg(k).arg("k7").query::<bool>(&mut c).unwrap_or(false) {
                cmd(&mut c, &[b"HSET", k.as_bytes(), b"k7", value]);
            }
        }
        check(name, &host, &["corrupted", "k7"], 2 * SECOND, move || {
            let b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Read)).ok()?;
            let listing = b.keys().collected();
            assert!(listing.is_err(), "a listing skipped the damaged value");
            assert!(b.contains(b"k7").is_err(), "contains skipped the damaged value");
            b.get(b"k7").err().map(|e| shown(&e))
        });
    }

    // A deadline index that is a string: the count, which purges, fails.
    let url = written(&s, "d4");
    for i in 0..64 {
        let k = format!("shelf:{{d4/{i}}}:exp");
        cmd(&mut c, &[b"SET", k.as_bytes(), b"garbage"]);
    }
    check("deadline index that is a string", &host, &["wrongtype"], 2 * SECOND, move || {
        let b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Read)).ok()?;
        b.len().err().map(|e| shown(&e))
    });

    // The commit counter holding garbage: reading it and bumping it fail.
    let url = written(&s, "d5");
    cmd(&mut c, &[b"SET", b"shelf:{d5}:commit", b"garbage"]);
    let u = url.clone();
    check("commit counter that is not a number (read)", &host, &[], 2 * SECOND, move || {
        let b = RedisBackend::open_url(&u, &BackendOptions::with_flag(Flag::Read)).ok()?;
        b.commit_number().err().map(|e| shown(&e))
    });
    check("commit counter that is not a number (sync)", &host, &["integer"], 2 * SECOND, move || {
        let mut b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Write)).ok()?;
        b.insert(b"k", b"v").ok()?;
        b.flush().err().map(|e| shown(&e))
    });

    // A protocol record naming no protocol: the facade refuses to guess.
    let url = format!("redis://:{SECRET}@{host}/0?namespace=d6&timeout=1");
    let mut shelf = shelf::OpenOptions::new().flag(Flag::New).open(&url).expect("a new shelf");
    shelf.insert("k", &1u32).expect("insert");
    shelf.close().expect("close");
    cmd(&mut c, &[b"HSET", b"shelf:{d6}:meta", b"m:protocol", b"no-such-protocol-7"]);
    check(
        "protocol record naming an unknown protocol",
        &host,
        &["no-such-protocol-7"],
        2 * SECOND,
        move || facade_err(&url),
    );
}

#[test]
fn a_cluster_that_is_down_is_a_bounded_error() {
    if let Some(why) = unavailable() {
        return skip("a_cluster_that_is_down", "redis", &why);
    }
    // One node in cluster mode: with no slots it is down from the start;
    // given every slot it is up, and taking them away brings it down.
    let node = RedisServer::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--requirepass",
        SECRET,
        "--masterauth",
        SECRET,
    ]);
    let host = format!("127.0.0.1:{}", node.port);
    let url = format!("redis://:{SECRET}@{host}/0?namespace=cd&timeout=1");
    let u = url.clone();
    check("a cluster with no slots served", &host, &[], 5 * SECOND, move || open_err(&u, Flag::Create));
    let admin = |command: &str| {
        let mut c = raw(&node);
        let mut cmd = redis::cmd("CLUSTER");
        for a in command.split_whitespace() {
            cmd.arg(a);
        }
        cmd.query::<redis::Value>(&mut c).expect("CLUSTER command");
    };
    admin("ADDSLOTSRANGE 0 16383");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw_command_auth(node.port).contains("cluster_state:ok") {
        assert!(Instant::now() < deadline, "the one-node cluster did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b =
        RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Create)).expect("open the cluster");
    assert!(b.is_cluster());
    b.insert(b"k", b"v").expect("insert");
    b.flush().expect("flush while up");
    admin("DELSLOTSRANGE 0 16383");
    check("a cluster that went down", &host, &[], 10 * SECOND, move || {
        let get = b.get(b"k").err().map(|e| shown(&e));
        b.insert(b"k2", b"v").ok()?;
        let flush = b.flush().err().map(|e| shown(&e));
        assert!(flush.is_some(), "a sync to a cluster that is down succeeded");
        get.or(flush)
    });
}

/// `CLUSTER INFO` of a server that wants the password.
fn raw_command_auth(port: u16) -> String {
    let _ = raw_command;
    let Ok(client) = redis::Client::open(format!("redis://:{SECRET}@127.0.0.1:{port}/0")) else {
        return String::new();
    };
    let Ok(mut c) = client.get_connection_with_timeout(SECOND) else { return String::new() };
    redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c).unwrap_or_default()
}

#[test]
fn a_url_backend_has_no_files() {
    assert!(<RedisBackend as shelf::raw::OpenBackend>::files(Path::new("redis://127.0.0.1:1/0")).is_empty());
}

#[test]
fn a_frozen_server_costs_one_timeout_and_no_misread_after() {
    if let Some(why) = unavailable() {
        return skip("a_frozen_server", "redis", &why);
    }
    let s = RedisServer::start(&["--requirepass", SECRET]);
    let host = format!("127.0.0.1:{}", s.port);
    let url = written(&s, "frozen");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &s.pid().to_string()]).status();
        assert!(ok.is_ok_and(|st| st.success()), "kill {sig}");
    };
    let b = std::sync::Arc::new(
        RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Read)).expect("open"),
    );
    signal("-STOP");
    // len is a pipeline of 64 scripts: one timeout, not 64.
    let h = std::sync::Arc::clone(&b);
    check("len on a frozen server", &host, &["timed out"], 2 * SECOND, move || {
        h.len().err().map(|e| shown(&e))
    });
    let h = std::sync::Arc::clone(&b);
    check("get on a frozen server", &host, &[], 2 * SECOND, move || h.get(b"k1").err().map(|e| shown(&e)));
    let u = url.clone();
    check("open on a frozen server", &host, &[], 2 * SECOND, move || open_err(&u, Flag::Read));
    signal("-CONT");
    // The late replies of the frozen commands are never taken for the
    // answers of the next ones.
    for i in 0..100 {
        assert_eq!(
            b.get(format!("k{i}").as_bytes()).expect("get after the thaw").as_deref(),
            Some(&b"value"[..])
        );
    }
    assert_eq!(b.len().expect("len after the thaw"), 100);
}
