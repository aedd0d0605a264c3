//! `AsyncShelf` under tokio's multi-thread runtime, and the web_service
//! example run as it is.

use std::time::Duration;

use shelf::{AsyncShelf, Error, OpenOptions, TASK_BACKEND, TaskError, Value};

// The example's own code: its handlers, server and client.
#[path = "../examples/web_service.rs"]
#[allow(dead_code)]
mod web_service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_insert_and_read() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("db")).await?;
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let shelf = shelf.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let key = format!("t{t}-{i}");
                shelf.insert(&key, (t, i)).await?;
                // Read back at once, while the other tasks write.
                assert_eq!(shelf.get::<(u32, u32)>(&key).await?, Some((t, i)));
                assert!(shelf.contains_key(&key).await?);
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    assert_eq!(shelf.len().await?, 200);
    let mut keys = shelf.keys().await?;
    keys.sort();
    assert_eq!(keys.first().map(String::as_str), Some("t0-0"));
    assert_eq!(keys.len(), 200);
    let items = shelf.items::<(u32, u32)>().await?;
    assert!(items.iter().all(|(k, (t, i))| *k == format!("t{t}-{i}")));
    // New shelves are MessagePack: readable as Value without the type.
    let entries = shelf.iter().await?;
    assert_eq!(entries.len(), 200);
    for (key, value) in entries {
        assert!(matches!(value?, Value::List(ref xs) if xs.len() == 2), "{key}");
    }
    shelf.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_then_use_is_closed_for_every_clone() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("db")).await?;
    let other = shelf.clone();
    shelf.insert("k", "v".to_owned()).await?;
    shelf.close().await?;
    assert!(other.is_closed().await);
    assert!(matches!(other.get::<String>("k").await, Err(Error::Closed)));
    assert!(matches!(other.insert("k", 1).await, Err(Error::Closed)));
    assert!(matches!(other.keys().await, Err(Error::Closed)));
    assert!(matches!(other.iter().await, Err(Error::Closed)));
    assert!(matches!(other.len().await, Err(Error::Closed)));
    // Closing again does nothing, as Shelf::close.
    other.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_survive_reopen() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let shelf = AsyncShelf::open(&path).await?;
    shelf.update((0..10u64).map(|i| (format!("k{i}"), i * i))).await?;
    assert!(shelf.remove("k0").await?);
    assert_eq!(shelf.pop::<u64>("k1").await?, Some(1));
    assert_eq!(shelf.set_default("k2", 99u64).await?, 4);
    shelf.sync().await?;
    shelf.close().await?;

    let reopened = OpenOptions::new().flag(shelf::Flag::Read).open_async(&path).await?;
    assert_eq!(reopened.len().await?, 8);
    assert_eq!(reopened.get::<u64>("k9").await?, Some(81));
    assert_eq!(reopened.get_or::<u64>("k0", 7).await?, 7);
    assert_eq!(reopened.get_many::<u64, _>(["k9", "k0", "k3"]).await?, [Some(81), None, Some(9)]);
    let mut values = reopened.values::<u64>().await?;
    values.sort_unstable();
    assert_eq!(values, [4, 9, 16, 25, 36, 49, 64, 81]);
    // Flag 'r': writes are refused, reads go on.
    assert!(matches!(reopened.insert("x", 1).await, Err(Error::ReadOnly { .. })));
    reopened.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_call_is_an_error_and_the_shelf_goes_on() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("db")).await?;
    shelf.insert("k", 1).await?;
    let failed = shelf.with_shelf(|_| -> Result<(), Error> { panic!("deliberate test panic") }).await;
    let Err(Error::Backend { backend, source, .. }) = failed else {
        panic!("expected a task error, got {failed:?}")
    };
    assert_eq!(backend, TASK_BACKEND);
    let task = source.downcast_ref::<TaskError>().expect("a TaskError");
    assert!(matches!(task, TaskError::Panicked { message } if message == "deliberate test panic"), "{task}");
    // The lock was released and the shelf is whole.
    assert_eq!(shelf.get::<i32>("k").await?, Some(1));
    shelf.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_still_finishes() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("db")).await?;
    // A call whose future times out runs to its end on the pool: never half a write.
    let slow = shelf.with_shelf(|s| {
        std::thread::sleep(Duration::from_millis(200));
        s.insert("late", &true)
    });
    assert!(tokio::time::timeout(Duration::from_millis(10), slow).await.is_err());
    assert_eq!(shelf.get::<bool>("late").await?, Some(true));
    shelf.close().await?;
    Ok(())
}

#[test]
fn outside_a_runtime_the_error_says_so() {
    // Poll the future on a runtime whose context is not entered by the
    // call: the only way to reach the check without a second executor.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let shelf = runtime.block_on(AsyncShelf::open(dir.path().join("db"))).expect("open");
    let len = std::thread::spawn(move || {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut call = std::pin::pin!(shelf.len());
        match call.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => panic!("the lock is free: the call must finish at once"),
        }
    })
    .join()
    .expect("the thread");
    let Err(Error::Backend { source, .. }) = len else { panic!("expected NoRuntime, got {len:?}") };
    assert!(matches!(source.downcast_ref::<TaskError>(), Some(TaskError::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_service_handlers_serve_the_shelf() -> Result<(), Box<dyn std::error::Error>> {
    use web_service::{Path, Response, State, get_item, put_item, request, serve};
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("db")).await?;

    // The handlers, called directly.
    let put = put_item(State(shelf.clone()), Path("a".into()), br#"{"n": [1, 2]}"#.to_vec()).await;
    assert_eq!(put, Response { status: 204, body: String::new() });
    let got = get_item(State(shelf.clone()), Path("a".into())).await;
    assert_eq!((got.status, got.body.as_str()), (200, r#"{"n":[1,2]}"#));
    let bad = put_item(State(shelf.clone()), Path("b".into()), b"not json".to_vec()).await;
    assert_eq!(bad.status, 400);

    // Through the server, many clients at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, shelf.clone()));
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(tokio::spawn(async move {
            let put = request(addr, "PUT", &format!("k{i}"), &i.to_string()).await?;
            let got = request(addr, "GET", &format!("k{i}"), "").await?;
            Ok::<_, std::io::Error>((put.status, got.status, got.body))
        }));
    }
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.await??, (204, 200, i.to_string()));
    }
    assert_eq!(request(addr, "GET", "nothing", "").await?.status, 404);
    assert_eq!(request(addr, "DELETE", "a", "").await?.status, 405);
    server.abort();
    assert_eq!(shelf.len().await?, 11);
    shelf.close().await?;
    // Closed: the handler reports the error, it does not panic.
    assert_eq!(get_item(State(shelf), Path("a".into())).await.status, 500);
    Ok(())
}

#[test]
fn web_service_example_runs() {
    // Exactly what `cargo run -p shelf --example web_service` does.
    web_service::main().expect("the example runs");
}
