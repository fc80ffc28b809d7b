//! peer_tokio_echo: the echo server a tokio user would write, one task per
//! connection, on a current-thread runtime or a multi-thread runtime with a
//! single worker.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_tokio_echo --flavor current --listen 127.0.0.1:7000
//! nc 127.0.0.1 7000                    # type a line, get it back
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`), `--buf BYTES` (each
//! connection's buffer, default 4096), `--flavor current|multi1` (default
//! `current`). Stops with exit status 0 on SIGINT or SIGTERM.

#[path = "common.rs"]
mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_tokio_echo [--listen ADDR] [--buf BYTES] [--flavor current|multi1]

A tokio echo server, one task per connection.
  --listen ADDR     address to listen on (default 127.0.0.1:0)
  --buf BYTES       per-connection buffer (default 4096)
  --flavor NAME     current: current_thread runtime (default);
                    multi1: multi_thread runtime with worker_threads(1)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Parses the command line, builds the chosen runtime, and serves on it.
fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &["current", "multi1"]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    if let Err(e) = common::on_stop_signal(|| std::process::exit(0)) {
        eprintln!("peer_tokio_echo: {e}");
        return ExitCode::FAILURE;
    }
    let mut builder = match args.flavor.as_deref() {
        Some("multi1") => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("peer_tokio_echo: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen, args.buf)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_tokio_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts connections and spawns an echo task for each, until a stop
/// signal ends the process.
async fn serve(addr: SocketAddr, buf_size: usize) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    common::announce(listener.local_addr()?)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream, buf_size));
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                eprintln!("peer_tokio_echo: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            // ECONNABORTED and the like concern one connection only.
            Err(_) => {}
        }
    }
}

/// Echoes one connection until end of stream or an error.
async fn echo(mut stream: TcpStream, buf_size: usize) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0; buf_size];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
