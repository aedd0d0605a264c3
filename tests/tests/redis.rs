//! The redis backend against real servers this file starts itself on free
//! loopback ports: the conformance suite on a standalone server and on a
//! 3-master cluster, the cluster layout, namespaces, crashes of clients
//! and servers, and network faults. Every test skips with a printed reason
//! where `redis-server` is not installed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backend_redis::RedisBackend;
use shelf::raw::{BackendOptions, OpenBackend};
use shelf::{Capabilities, Flag, KvBackend, OpenError, OpenOptions, Shelf, WhichDb};
use shelf_cli::error::chain;
use shelf_tests::Collected;
use shelf_tests::redis_server::{RedisCluster, RedisServer, raw_command, unavailable};
use shelf_tests::{Subject, conformance_suite, skip};

/// The standalone server the suite shares (one per test binary; the
/// watchdog stops it when the binary exits).
fn standalone() -> Option<&'static RedisServer> {
    static S: OnceLock<Option<RedisServer>> = OnceLock::new();
    S.get_or_init(|| unavailable().is_none().then(|| RedisServer::start(&[]))).as_ref()
}

/// The 3-master cluster the suite shares.
fn cluster() -> Option<&'static RedisCluster> {
    static C: OnceLock<Option<RedisCluster>> = OnceLock::new();
    C.get_or_init(|| unavailable().is_none().then(|| RedisCluster::start(3, 0, &[]))).as_ref()
}

fn why() -> String {
    unavailable().unwrap_or_default()
}

/// A namespace per scratch path, so each case has its own shelf.
fn namespace_of(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("t{h:016x}")
}

/// The redis backend, by type, at `base?namespace=<from the path>`.
struct ByUrl(String);

impl ByUrl {
    fn url(&self, path: &Path) -> String {
        format!("{}?namespace={}&timeout=5", self.0, namespace_of(path))
    }
}

impl Subject for ByUrl {
    type B = RedisBackend;
    fn name(&self) -> &'static str {
        "redis"
    }
    fn open_backend(&self, path: &Path, options: &BackendOptions) -> Result<RedisBackend, OpenError> {
        RedisBackend::open_url(&self.url(path), options)
    }
    fn open_shelf(&self, path: &Path, options: &OpenOptions) -> Result<Shelf<RedisBackend>, OpenError> {
        options.open_as::<RedisBackend>(self.url(path))
    }
    fn static_capabilities(&self) -> Capabilities {
        RedisBackend::CAPABILITIES
    }
    fn files(&self, _path: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// The same through the registry and the facade's URL handling: no
/// backend named, the URL alone chooses it.
struct ByUrlDyn(String);

impl Subject for ByUrlDyn {
    type B = Box<dyn KvBackend>;
    fn name(&self) -> &'static str {
        "redis"
    }
    fn open_backend(&self, path: &Path, options: &BackendOptions) -> Result<Self::B, OpenError> {
        let url = ByUrl(self.0.clone()).url(path);
        let location = shelf::Location::new(&url);
        let info = location.url_backend()?.expect("a redis URL has a backend");
        (info.open)(location.as_path(), options)
    }
    fn open_shelf(&self, path: &Path, options: &OpenOptions) -> Result<Shelf<Self::B>, OpenError> {
        options.open(ByUrl(self.0.clone()).url(path))
    }
    fn static_capabilities(&self) -> Capabilities {
        shelf::find_backend("redis").map(|b| b.capabilities).unwrap_or(Capabilities::NONE)
    }
    fn files(&self, _path: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

fn base(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/0")
}

// The shared conformance suite, skipping with the reason where no server
// can be started. `damaged_files_are_errors_not_panics` skips (a server
// keeps no files here); tests/tests/redis_bad_input.rs is redis's table.
conformance_suite!(standalone_suite, standalone().map(|s| ByUrl(base(s.port))).ok_or_else(why));
conformance_suite!(standalone_dyn, standalone().map(|s| ByUrlDyn(base(s.port))).ok_or_else(why));
conformance_suite!(cluster_suite, cluster().map(|c| ByUrl(base(c.nodes[0].port))).ok_or_else(why));
conformance_suite!(cluster_dyn, cluster().map(|c| ByUrlDyn(base(c.nodes[1].port))).ok_or_else(why));

#[test]
fn get_many_is_get_of_each_key() {
    for (what, url) in [
        ("standalone", standalone().map(|s| s.url("namespace=many"))),
        ("cluster", cluster().map(|c| c.url("namespace=many"))),
    ] {
        let Some(url) = url else { return skip("get_many_is_get_of_each_key", "redis", &why()) };
        let mut b = write(&url, 3000);
        // Unsynced writes are read back too: an overwrite, a removal, a new key.
        b.insert(b"key1", b"changed").unwrap();
        assert!(b.remove(b"key2").unwrap());
        b.insert(b"fresh", b"new").unwrap();
        let mut keys: Vec<Vec<u8>> = (0..3000).map(|i| format!("key{i}").into_bytes()).collect();
        keys.extend([b"fresh".to_vec(), b"absent".to_vec()]);
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let many = b.get_many(&refs).unwrap();
        for (k, v) in keys.iter().zip(&many) {
            assert_eq!(v, &b.get(k).unwrap(), "{what}: {}", String::from_utf8_lossy(k));
        }
        assert_eq!(many[1].as_deref(), Some(&b"changed"[..]));
        assert_eq!((many[2].as_deref(), many[3001].as_deref()), (None, None));
        b.close().unwrap();
    }
}

fn write(url: &str, n: u32) -> RedisBackend {
    let mut b = RedisBackend::open_url(url, &BackendOptions::with_flag(Flag::Create)).unwrap();
    for i in 0..n {
        b.insert(format!("key{i}").as_bytes(), format!("value{i}").as_bytes()).unwrap();
    }
    b.flush().unwrap();
    b
}

fn assert_all(b: &impl KvBackend, n: u32) {
    assert_eq!(b.len().unwrap(), n as usize);
    for i in 0..n {
        let v = b.get(format!("key{i}").as_bytes()).unwrap();
        assert_eq!(v.as_deref(), Some(format!("value{i}").as_bytes()), "key{i}");
    }
}

#[test]
fn cluster_keys_land_on_every_master() {
    let Some(c) = cluster() else { return skip("cluster_keys_land_on_every_master", "redis", &why()) };
    let b = write(&c.url("namespace=spread"), 2000);
    assert!(b.is_cluster(), "the backend did not detect the cluster");
    let masters = c.masters();
    assert_eq!(masters.len(), 3);
    for port in masters {
        let mut conn = redis::Client::open(base(port)).unwrap().get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("shelf:{spread/*").query(&mut conn).unwrap();
        let held: usize =
            keys.iter().map(|k| redis::cmd("HLEN").arg(k).query::<usize>(&mut conn).unwrap()).sum();
        assert!(held > 100, "master {port} holds {held} of 2000 entries in {} buckets", keys.len());
    }
}

#[test]
fn second_client_on_another_node_sees_synced_writes() {
    let Some(c) = cluster() else { return skip("second_client_on_another_node", "redis", &why()) };
    let _writer = write(&c.url("namespace=across"), 500);
    let reader =
        RedisBackend::open_url(&c.nodes[2].url("namespace=across"), &BackendOptions::with_flag(Flag::Read))
            .unwrap();
    assert_all(&reader, 500);
    // And through the facade, by URL alone.
    let shelf = shelf::OpenOptions::new().flag(Flag::Read).open(c.nodes[1].url("namespace=across")).unwrap();
    assert_eq!(shelf.len().unwrap(), 500);
    assert_eq!(shelf::whichdb_at(c.nodes[1].url("namespace=across")).unwrap(), WhichDb::Backend("redis"));
}

#[test]
fn namespaces_never_see_each_other() {
    let Some(s) = standalone() else { return skip("namespaces_never_see_each_other", "redis", &why()) };
    let mut a = write(&s.url("namespace=ns-a"), 50);
    let mut b =
        RedisBackend::open_url(&s.url("namespace=ns-b"), &BackendOptions::with_flag(Flag::Create)).unwrap();
    b.insert(b"key0", b"other").unwrap();
    b.set_metadata("protocol", b"x").unwrap();
    b.flush().unwrap();
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(b.keys().collected().unwrap(), vec![b"key0".to_vec()]);
    assert_all(&a, 50);
    assert_eq!(a.metadata("protocol").unwrap(), None);
    // flag n empties one namespace only.
    drop(RedisBackend::open_url(&s.url("namespace=ns-b"), &BackendOptions::with_flag(Flag::New)).unwrap());
    assert_all(&a, 50);
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn whichdb_asks_the_server_and_bounds_the_wait() {
    let Some(s) = standalone() else { return skip("whichdb_asks_the_server", "redis", &why()) };
    drop(write(&s.url("namespace=which"), 1));
    assert_eq!(shelf::whichdb(s.url("namespace=which")), WhichDb::Backend("redis"));
    assert_eq!(shelf::whichdb_at(s.url("namespace=nothing-here")).unwrap(), WhichDb::Missing);
    // A port where nothing listens: refused at once. A blackholed address
    // (TEST-NET-1) is never reached: bounded by the timeout.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let e = shelf::whichdb_at(format!("redis://u:hunter2@127.0.0.1:{dead}/0")).unwrap_err();
    let shown = format!("{e} {e:?} {}", chain(&e));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(&format!("127.0.0.1:{dead}")), "{shown}");
    let started2 = Instant::now();
    let e = shelf::whichdb_at("redis://192.0.2.1:6379/0?timeout=1").unwrap_err();
    assert!(started2.elapsed() < Duration::from_secs(4), "took {:?}: {e}", started2.elapsed());
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn credentials_never_appear_in_errors() {
    if let Some(why) = unavailable() {
        return skip("credentials_never_appear_in_errors", "redis", &why);
    }
    let s = RedisServer::start(&["--requirepass", "s3cretpw"]);
    let good = format!("redis://:s3cretpw@127.0.0.1:{}/0?namespace=auth", s.port);
    let mut b = RedisBackend::open_url(&good, &BackendOptions::with_flag(Flag::Create)).unwrap();
    b.insert(b"k", b"v").unwrap();
    b.flush().unwrap();
    assert!(!b.location().contains("s3cretpw") && !format!("{b:?}").contains("s3cretpw"));
    let bad = format!("redis://:wrongpw@127.0.0.1:{}/0?namespace=auth", s.port);
    let e = RedisBackend::open_url(&bad, &BackendOptions::with_flag(Flag::Read)).unwrap_err();
    let shown = format!("{} | {e:?}", chain(&e));
    assert!(!shown.contains("wrongpw"), "{shown}");
    let Err(e) = shelf::open(&bad) else { panic!("a wrong password opened") };
    let shown = format!("{} | {e:?}", chain(&e));
    assert!(!shown.contains("wrongpw") && shown.contains("***@127.0.0.1"), "{shown}");
}

#[test]
fn stopped_server_is_a_bounded_error_and_a_restart_is_reconnected() {
    if let Some(why) = unavailable() {
        return skip("stopped_server", "redis", &why);
    }
    let mut s = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = s.url("namespace=restart&timeout=1");
    let mut b = write(&url, 300);
    s.kill();
    let started = Instant::now();
    let e = b.get(b"key1").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    let shown = chain(&e);
    assert!(shown.contains(&format!("127.0.0.1:{}", s.port)), "{shown}");
    // appendfsync always: every synced key survives the SIGKILL of the server.
    s.restart();
    assert_all(&b, 300);
    b.insert(b"after", b"restart").unwrap();
    b.flush().unwrap();
    assert_eq!(b.get(b"after").unwrap().as_deref(), Some(&b"restart"[..]));
    let durability = b.durability().unwrap();
    assert!(durability.contains("always"), "{durability}");
}

#[test]
fn killed_client_loses_no_synced_key() {
    let Some(s) = standalone() else { return skip("killed_client_loses_no_synced_key", "redis", &why()) };
    use shelf_tests::crash::{key, overwritten, value};
    use std::io::BufRead;
    let url = s.url("namespace=crash");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shelf-test-worker"))
        .args(["crash-writer", "redis", &url, "1", "100000", "200"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut last = None;
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(b) = line.strip_prefix("synced ") {
            last = Some(b.parse::<u64>().unwrap());
            if last >= Some(20) {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let last = last.expect("the worker synced something");
    let db = OpenOptions::new().flag(Flag::Read).protocol(shelf_tests::crash::PROTOCOL).open(&url).unwrap();
    for b in 0..=last {
        for i in 0..200 {
            let got: Option<serde_bytes::ByteBuf> = db.get(key(1, b, i)).unwrap();
            let got = got.unwrap_or_else(|| panic!("batch {b} key {i} synced, then lost"));
            assert!(
                got == value(1, b, i) || (i == 0 && got == overwritten(1, b, i)),
                "batch {b} key {i} wrong"
            );
        }
    }
}

#[test]
fn failover_keeps_keys_synced_with_replicas() {
    if let Some(why) = unavailable() {
        return skip("failover_keeps_keys_synced_with_replicas", "redis", &why);
    }
    let mut c = RedisCluster::start(3, 1, &[]);
    let url = c.url("namespace=failover&replicas=1&timeout=5");
    let b = write(&url, 1000);
    drop(b);
    // Kill a master that is not the node in the URL.
    let masters = c.masters();
    let victim = *masters.iter().find(|p| **p != c.nodes[0].port).unwrap();
    let at = c.nodes.iter().position(|n| n.port == victim).unwrap();
    c.nodes[at].kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Until the failure is detected the survivors still say ok: wait
        // for the replica's promotion (three masters among them again).
        let promoted = c.masters().into_iter().filter(|p| *p != victim).count() == 3;
        let ok = c
            .nodes
            .iter()
            .filter(|n| n.port != victim)
            .all(|n| raw_command(n.port, "CLUSTER INFO").is_some_and(|r| r.contains("cluster_state:ok")));
        if promoted && ok {
            break;
        }
        assert!(Instant::now() < deadline, "no replica was promoted within 20 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reader = RedisBackend::open_url(
        &c.nodes[0].url("namespace=failover&timeout=5"),
        &BackendOptions::with_flag(Flag::Read),
    )
    .unwrap();
    assert_all(&reader, 1000);
}

/// The entries of namespace `ns` the servers at `ports` hold (HLEN of its
/// buckets), counted with raw clients: what is really on the servers.
fn entries_on_servers(ports: &[u16], ns: &str) -> usize {
    ports
        .iter()
        .map(|port| {
            let mut conn = redis::Client::open(base(*port)).unwrap().get_connection().unwrap();
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(format!("shelf:{{{ns}/*")).query(&mut conn).unwrap();
            keys.iter()
                .filter(|k| k.ends_with('}'))
                .map(|k| redis::cmd("HLEN").arg(k).query::<usize>(&mut conn).unwrap())
                .sum::<usize>()
        })
        .sum()
}

#[test]
fn entries_with_a_ttl_expire_for_every_reader() {
    const TTL: Duration = Duration::from_millis(300);
    for (what, url, other, ports) in [
        (
            "standalone",
            standalone().map(|s| s.url("namespace=ttl")),
            standalone().map(|s| s.url("namespace=ttl")),
            standalone().map(|s| vec![s.port]),
        ),
        (
            "cluster",
            cluster().map(|c| c.url("namespace=ttl")),
            cluster().map(|c| c.nodes[2].url("namespace=ttl")),
            cluster().map(RedisCluster::masters),
        ),
    ] {
        let (Some(url), Some(other), Some(ports)) = (url, other, ports) else {
            return skip("entries_with_a_ttl_expire_for_every_reader", "redis", &why());
        };
        let mut b = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::New)).unwrap();
        assert!(b.capabilities().expiry, "{what}: a new shelf has expiry");
        b.insert(b"plain", b"stays").unwrap();
        // A plain value that starts with the header byte is not taken for one.
        b.insert(b"plain-c1", b"\xc1\x01looks like a header").unwrap();
        b.insert_with_ttl(b"long", b"later", Duration::from_secs(60)).unwrap();
        b.insert_with_ttl(b"overwritten", b"x", TTL).unwrap();
        b.flush().unwrap();
        // Overwritten by a plain value after its deadline was indexed: stays.
        b.insert(b"overwritten", b"kept").unwrap();
        b.flush().unwrap();
        let started = Instant::now();
        b.insert_with_ttl(b"short", b"gone soon", TTL).unwrap();
        // Never synced before it expires: gone from the handle, never sent.
        b.insert_with_ttl(b"pending", b"gone too", TTL).unwrap();
        assert_eq!(b.get(b"pending").unwrap().as_deref(), Some(&b"gone too"[..]), "{what}");
        assert_eq!(b.get(b"short").unwrap().as_deref(), Some(&b"gone soon"[..]), "{what}");
        b.remove(b"pending").unwrap();
        b.insert_with_ttl(b"pending", b"gone too", TTL).unwrap();
        let mut sent = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Write)).unwrap();
        sent.insert_with_ttl(b"short", b"gone soon", TTL).unwrap();
        sent.flush().unwrap();
        let reader = RedisBackend::open_url(&other, &BackendOptions::with_flag(Flag::Read)).unwrap();
        // Seen while alive, by this handle and by a reader on another node
        // (checked only while the deadline is surely ahead: a loaded
        // machine may have spent the 300 ms already).
        let seen_len = b.len().unwrap();
        let seen_keys: Vec<Vec<u8>> = reader.keys().collected().unwrap();
        let seen_get = reader.get(b"short").unwrap();
        if started.elapsed() < Duration::from_millis(200) {
            assert_eq!(seen_len, 6, "{what}: plain, plain-c1, long, overwritten, short, pending");
            assert!(seen_keys.contains(&b"short".to_vec()), "{what}");
            assert_eq!(seen_get.as_deref(), Some(&b"gone soon"[..]), "{what}");
        } else {
            eprintln!("{what}: the alive checks came {:?} after the insert; skipped", started.elapsed());
        }
        std::thread::sleep((TTL + Duration::from_millis(100)).saturating_sub(started.elapsed()));
        for (who, h) in [("writer", &b), ("reader on another node", &reader)] {
            assert_eq!(h.get(b"short").unwrap(), None, "{what}, {who}: get");
            assert_eq!(h.get(b"pending").unwrap(), None, "{what}, {who}: get of the unsent");
            assert!(!h.contains(b"short").unwrap(), "{what}, {who}: contains");
            assert_eq!(h.get_many(&[b"short", b"long"]).unwrap()[0], None, "{what}, {who}: get_many");
            let mut keys = h.keys().collected().unwrap();
            keys.sort();
            let want: Vec<Vec<u8>> =
                [&b"long"[..], b"overwritten", b"plain", b"plain-c1"].iter().map(|k| k.to_vec()).collect();
            assert_eq!(keys, want, "{what}, {who}: keys");
            assert_eq!(h.iter().collected().unwrap().len(), 4, "{what}, {who}: iter");
            assert_eq!(h.len().unwrap(), 4, "{what}, {who}: len");
            assert_eq!(h.get(b"overwritten").unwrap().as_deref(), Some(&b"kept"[..]), "{what}, {who}");
            assert_eq!(h.get(b"plain-c1").unwrap().as_deref(), Some(&b"\xc1\x01looks like a header"[..]));
            assert_eq!(h.get(b"long").unwrap().as_deref(), Some(&b"later"[..]), "{what}, {who}");
        }
        // Really gone from the servers (len purged what had expired), not
        // only hidden.
        b.flush().unwrap();
        assert_eq!(entries_on_servers(&ports, "ttl"), 4, "{what}: entries left on the servers");
        // A plain insert never expires; a removed expiring entry is gone.
        b.insert_with_ttl(b"long", b"again", TTL).unwrap();
        assert!(b.remove(b"long").unwrap());
        b.close().unwrap();
        let after = RedisBackend::open_url(&url, &BackendOptions::with_flag(Flag::Read)).unwrap();
        assert_eq!(after.len().unwrap(), 3, "{what}");
    }
    // Through the facade: a shelf of values, opened by URL alone.
    let Some(s) = standalone() else { return };
    let mut shelf = OpenOptions::new().flag(Flag::New).open(s.url("namespace=ttl-shelf")).unwrap();
    shelf.insert_with_ttl("session", &vec![1u32, 2, 3], TTL).unwrap();
    shelf.insert("user", "ada").unwrap();
    shelf.sync().unwrap();
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert_eq!(shelf.get::<Vec<u32>>("session").unwrap(), None);
    assert_eq!(shelf.len().unwrap(), 1);
    assert_eq!(shelf.keys().unwrap().collect::<Result<Vec<_>, _>>().unwrap(), vec!["user".to_owned()]);
}

#[test]
fn path_backends_have_no_expiry() {
    // Every backend at paths (the files' and memory) stays Unsupported.
    let dir = tempfile::tempdir().unwrap();
    for info in shelf::backends() {
        let path = dir.path().join(format!("db-{}", info.name));
        let mut b = (info.open)(&path, &BackendOptions::with_flag(Flag::New)).unwrap();
        let e = b.insert_with_ttl(b"k", b"v", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, shelf::Error::Unsupported { .. }), "{}: {e}", info.name);
        assert!(!b.capabilities().expiry && !info.capabilities.expiry, "{}", info.name);
        b.close().unwrap();
    }
    assert!(shelf::find_backend("redis").unwrap().capabilities.expiry);
}

#[test]
fn stats_state_durability_and_no_byte_count() {
    for (what, url) in [
        ("standalone", standalone().map(|s| s.url("namespace=stats"))),
        ("cluster", cluster().map(|c| c.url("namespace=stats"))),
    ] {
        let Some(url) = url else { return skip("stats_state_durability", "redis", &why()) };
        let b = write(&url, 10);
        let stats = b.stats().unwrap();
        assert_eq!(stats.bytes_on_disk, None, "{what}: unknown, not zero");
        let d = stats.durability.unwrap_or_default();
        // The test servers run with appendonly no and save "".
        assert!(d.contains("appendonly no") && d.contains("no RDB snapshots"), "{what}: {d}");
        assert!(d.contains("127.0.0.1:"), "{what}: names the host: {d}");
    }
    // appendonly yes, appendfsync always: a sync is on disk.
    if unavailable().is_none() {
        let s = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
        let b = write(&s.url("namespace=stats"), 1);
        let d = b.stats().unwrap().durability.unwrap_or_default();
        assert!(d.contains("appendfsync always") && d.contains("power loss"), "{d}");
        let s = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
        let d = write(&s.url("namespace=stats&replicas=0"), 1).durability().unwrap();
        assert!(d.contains("about a second"), "{d}");
    }
}

#[test]
fn readers_on_several_threads_share_one_handle() {
    let Some(s) = standalone() else { return skip("readers_on_several_threads", "redis", &why()) };
    let b = write(&s.url("namespace=threads"), 200);
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let b = &b;
            scope.spawn(move || {
                for i in (t..200).step_by(4) {
                    let v = b.get(format!("key{i}").as_bytes()).unwrap();
                    assert_eq!(v.as_deref(), Some(format!("value{i}").as_bytes()));
                }
                assert_eq!(b.len().unwrap(), 200);
            });
        }
    });
}
