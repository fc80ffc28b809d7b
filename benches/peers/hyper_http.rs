//! peer_hyper_http: the HTTP/1.1 server a hyper user would write, one task
//! per connection on tokio's current-thread runtime, with the routes of
//! `examples/http.rs` (issue 12).
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_hyper_http --listen 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/json
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`). Stops with exit status
//! 0 on SIGINT or SIGTERM.
//!
//! hyper's `http1` connection builder with the settings its own benchmarks
//! and TechEmpower entry use: `pipeline_flush(true)` (answers to pipelined
//! requests go out together), TCP_NODELAY, and a 10 s header-read timeout
//! on tokio's timer (the twins' `--timeout` default). hyper writes the
//! `Date` header itself, from its own once-a-second cache.

#[path = "common.rs"]
mod common;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_hyper_http [--listen ADDR]

A hyper 1.x HTTP/1.1 server on tokio's current-thread runtime:
GET|HEAD /plaintext and /json, POST /echo, 404 otherwise.
  --listen ADDR   address to listen on (default 127.0.0.1:0)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Largest body `/echo` takes.
const MAX_BODY: usize = 1 << 20;

fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    if let Err(e) = common::on_stop_signal(|| std::process::exit(0)) {
        eprintln!("peer_hyper_http: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("peer_hyper_http: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_hyper_http: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts connections and serves each in its own task.
async fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    common::announce(listener.local_addr()?)?;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.pipeline_flush(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let conn =
                    http.serve_connection(TokioIo::new(stream), hyper::service::service_fn(route));
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                eprintln!("peer_hyper_http: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            Err(_) => {}
        }
    }
}

/// The routes.
async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/plaintext") => (
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"Hello, World!"),
        ),
        (&Method::GET | &Method::HEAD, "/json") => (
            StatusCode::OK,
            "application/json",
            Bytes::from_static(br#"{"message":"Hello, World!"}"#),
        ),
        (&Method::POST, "/echo") => match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => (StatusCode::OK, "application/octet-stream", body.to_bytes()),
            Err(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                Bytes::from_static(b"413 Payload Too Large"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"Not Found"),
        ),
    };
    let mut rsp = Response::new(Full::new(body));
    *rsp.status_mut() = status;
    let headers = rsp.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("hyper"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(rsp)
}
