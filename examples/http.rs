//! http: an HTTP/1.1 server, one green thread per connection, written as
//! plain blocking code on `greenio::net::Server` — gevent's pywsgi, in
//! Rust. Its callback twin is `examples/http_callback.rs`.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --release --example http                   # listening on 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/plaintext              # Hello, World!
//! curl -i http://127.0.0.1:8080/json                   # {"message":"Hello, World!"}
//! curl -i --data-binary @Cargo.toml http://127.0.0.1:8080/echo
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/plaintext
//! ```
//!
//! Routes: `GET`/`HEAD` `/plaintext` and `/json` (TechEmpower's plaintext
//! and json tests), `POST /echo` (the body back, sent with
//! `Content-Length` or chunked), 404 for anything else. Requests are parsed
//! by `httparse`; the rules every twin shares (routes, limits, error
//! statuses, the `Date` cache) are in `examples/support/http_proto.rs`,
//! and this file is only the connection: read, answer, write.
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--hubs N` (OS
//! threads serving connections), `--timeout SECS` (for a request to arrive
//! whole, and for a keep-alive connection to stay idle; default 10),
//! `--max-conns N` (connections served at once; more wait in the kernel's
//! backlog). Ctrl-C (SIGINT) or SIGTERM stops it: it stops accepting,
//! gives open connections a second to finish, closes the rest and exits 0.
//! `GREENIO_LOG=debug` shows more log lines on stderr.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use greenio::net::{Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/http_cli.rs"]
mod http_cli;
#[path = "support/http_proto.rs"]
mod http_proto;
use http_proto::{Input, Next, Parser, Status, OUT_HIGH_WATER};

/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// One connection, from accept to close: answer requests until the client
/// closes, asks to close, sends something bad or goes quiet too long.
///
/// The loop reads top to bottom: take the next request from what was read;
/// if it is not all there yet, write out the answers so far (all the
/// answers to one read go out in one write) and read more. A client that
/// pipelines requests without reading the answers is held back by that
/// write: it blocks, so this thread stops reading until the client catches
/// up (or the write times out).
fn serve(mut conn: TcpStream, timeout: Duration) {
    // Answers go out at once, without waiting for the client's ACK.
    let _ = conn.set_nodelay(true);
    // A client that stops reading our answers is dropped after `timeout`.
    let _ = conn.set_write_timeout(Some(timeout));

    let mut input = Input::new();
    let mut parser = Parser::new();
    let mut out = Vec::with_capacity(4096);
    // When the request being read must be complete: set when its first
    // bytes are in, cleared by each complete request.
    let mut deadline: Option<Instant> = None;

    loop {
        match parser.next(&mut input) {
            Next::Request(head, body) => {
                deadline = None;
                let keep_alive = http_proto::respond(&head, body, &mut out);
                if !keep_alive {
                    let _ = conn.write_all(&out);
                    return close(conn);
                }
                if out.len() >= OUT_HIGH_WATER && flush(&mut conn, &mut out).is_err() {
                    return;
                }
            }
            Next::Continue => out.extend_from_slice(http_proto::CONTINUE),
            Next::Error(status) => return fail(conn, status, out),
            Next::NeedMore { started } => {
                if flush(&mut conn, &mut out).is_err() {
                    return;
                }
                // Idle between requests: wait up to `timeout` for the next
                // one. Part of a request in: it has until `timeout` after
                // its first bytes arrived, however it trickles in.
                let left = if started {
                    let now = Instant::now();
                    let deadline = *deadline.get_or_insert(now + timeout);
                    match deadline.checked_duration_since(now) {
                        Some(left) if !left.is_zero() => left,
                        _ => return timed_out(conn, started, out),
                    }
                } else {
                    timeout
                };
                let _ = conn.set_read_timeout(Some(left));
                match conn.read(input.spare()) {
                    Ok(0) => return, // the client closed
                    Ok(n) => input.filled(n),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return timed_out(conn, started, out);
                    }
                    Err(_) => return, // reset, broken pipe...
                }
            }
        }
    }
}

/// Writes out and forgets the answers so far.
fn flush(conn: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        conn.write_all(out)?;
        out.clear();
    }
    Ok(())
}

/// The request did not arrive in time: 408 if part of it came, else (an
/// idle keep-alive connection) just close.
fn timed_out(conn: TcpStream, started: bool, out: Vec<u8>) {
    if started {
        fail(conn, Status::RequestTimeout, out);
    }
}

/// Sends the answers so far and an error, then closes.
fn fail(mut conn: TcpStream, status: Status, mut out: Vec<u8>) {
    http_proto::respond_error(status, &mut out);
    if conn.write_all(&out).is_ok() {
        close(conn);
    }
}

/// Closes after our last answer: shuts down our side, then reads and drops
/// what the client still sends (bounded in bytes and time) until its EOF.
/// Closing with unread input would make the kernel send a reset, which
/// can destroy the answer before the client has read it.
fn close(conn: TcpStream) {
    let _ = conn.close_lingering(256 * 1024, Duration::from_secs(2));
}

fn main() -> ExitCode {
    let usage = http_cli::usage(
        "http",
        "connections served at once; more wait in the backlog",
    );
    let opts = http_cli::parse_or_exit("http", &usage);
    cli::init_logger();

    let runtime = match greenio::Runtime::builder().hubs(opts.hubs).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.run(move || -> std::io::Result<()> {
        // Listen for the stop signals before anything else, so that a
        // SIGTERM arriving at any point from here on stops us cleanly.
        let signals = Signals::new(&[SIGINT, SIGTERM])?;

        let timeout = opts.timeout;
        let mut builder = Server::builder().name("http");
        if let Some(n) = opts.max_conns {
            builder = builder.max_connections(n);
        }
        let server = builder.bind(opts.listen.as_str(), move |conn, _peer: SocketAddr| {
            serve(conn, timeout)
        })?;

        // SIGINT/SIGTERM: stop accepting, give open connections GRACE.
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        std::io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("http", result)
}
