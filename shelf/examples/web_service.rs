//! A shelf shared by the handlers of a web service.
//!
//! `cargo run -p shelf --example web_service`
//!
//! The handlers are written as axum handlers are (`State` and `Path`
//! extractors, a shelf as the shared state); to keep the example free of a
//! web framework, a tiny HTTP/1.1 server on tokio's `TcpListener` serves
//! `GET /KEY` and `PUT /KEY` (a JSON body) on 127.0.0.1 at a free port. The
//! example then calls itself once with each request and exits. With axum,
//! delete `State`, `Path`, `Response` and `serve` below and write
//! `Router::new().route("/{key}", get(get_item).put(put_item)).with_state(shelf)`.

use shelf::{AsyncShelf, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// axum's `State` extractor: the shared state, here the shelf.
pub struct State<T>(pub T);

/// axum's `Path` extractor: the key from the URL.
pub struct Path<T>(pub T);

/// A status code and a body, as an axum handler's `(StatusCode, String)`.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body (JSON, or an error message).
    pub body: String,
}

impl Response {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Response { status, body: body.into() }
    }

    /// A shelf error as a 500, with its whole cause chain.
    fn error(e: &shelf::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Response::new(500, text)
    }
}

/// `GET /KEY`: the stored value as JSON, or 404. New shelves store
/// MessagePack, which is self-describing, so any value reads as a
/// `shelf::Value` without knowing the Rust type that wrote it.
pub async fn get_item(State(shelf): State<AsyncShelf>, Path(key): Path<String>) -> Response {
    match shelf.get::<Value>(key).await {
        Ok(Some(value)) => match serde_json::to_string(&value) {
            Ok(json) => Response::new(200, json),
            Err(e) => Response::new(500, format!("cannot show the value as JSON: {e}")),
        },
        Ok(None) => Response::new(404, "no such key"),
        Err(e) => Response::error(&e),
    }
}

/// `PUT /KEY` with a JSON body: stores it and syncs, so a 204 means the
/// value survives a crash of the service.
pub async fn put_item(State(shelf): State<AsyncShelf>, Path(key): Path<String>, body: Vec<u8>) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Response::new(400, format!("the body is not JSON: {e}")),
    };
    // Insert and sync in one call, so no other request's write lands between them.
    let stored = shelf
        .with_shelf(move |s| {
            s.insert(&key, &value)?;
            s.sync()
        })
        .await;
    match stored {
        Ok(()) => Response::new(204, ""),
        Err(e) => Response::error(&e),
    }
}

/// Serves HTTP/1.1 on `listener` until the task is aborted, one task per
/// connection, every one sharing the shelf.
pub async fn serve(listener: TcpListener, shelf: AsyncShelf) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let shelf = shelf.clone(); // cheap: an Arc
        tokio::spawn(async move {
            if let Err(e) = handle_connection(stream, shelf).await {
                eprintln!("connection failed: {e}");
            }
        });
    }
}

/// Reads one request, routes it to a handler, writes the response.
async fn handle_connection(stream: TcpStream, shelf: AsyncShelf) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let key = target.strip_prefix('/').unwrap_or("").to_owned();

    // Headers: only Content-Length matters here.
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    // A bound, so a client cannot make the service allocate without limit.
    const MAX_BODY: usize = 1 << 20;
    let response = if length > MAX_BODY {
        Response::new(413, "body over 1 MiB")
    } else if key.is_empty() {
        Response::new(404, "use /KEY")
    } else {
        match method {
            "GET" => get_item(State(shelf), Path(key)).await,
            "PUT" => {
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await?;
                put_item(State(shelf), Path(key), body).await
            }
            _ => Response::new(405, "GET or PUT"),
        }
    };
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
        response.status,
        response.body.len()
    );
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

/// A one-request HTTP/1.1 client: the status code and body.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    key: &str,
    body: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} /{key} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Response { status, body: body.to_owned() })
}

/// Serves, calls itself once per request, and exits (`pub` for the test
/// that runs this example in `cargo test`).
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shelf = AsyncShelf::open(dir.path().join("service.db")).await?;

    // Port 0: the system picks a free port, so the example never collides.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, shelf.clone()));
    println!("serving on http://{addr}");

    let put = request(addr, "PUT", "apples", r#"{"count": 3, "tags": ["red", "sweet"]}"#).await?;
    println!("PUT /apples -> {}", put.status);
    let got = request(addr, "GET", "apples", "").await?;
    println!("GET /apples -> {} {}", got.status, got.body);
    let missing = request(addr, "GET", "pears", "").await?;
    println!("GET /pears  -> {} {}", missing.status, missing.body);
    assert_eq!((put.status, got.status, missing.status), (204, 200, 404));

    server.abort();
    shelf.close().await?;
    Ok(())
}
