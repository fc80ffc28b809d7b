//! peer_mio_http: a hand-written, single-threaded mio HTTP/1.1 server with
//! the routes of `examples/http.rs`: the practical ceiling for an HTTP
//! server on one readiness loop, and the baseline of the HTTP comparison
//! (issue 12).
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_mio_http --listen 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/plaintext
//! taskset -c 1 wrk -t1 -c100 -d5s http://127.0.0.1:8080/plaintext
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`). Stops with exit
//! status 0 on SIGINT or SIGTERM.
//!
//! # Design
//!
//! The loop of `peer_mio_echo` (`mio_loop.rs`: one `Poll`, a slab of
//! connections, every socket registered once for READABLE | WRITABLE,
//! edge-triggered; and the short-read shortcut), with the request handling of the greenio twins:
//! the same parser, routes and response writer (`examples/support/
//! http_proto.rs`), so that the comparison measures only how bytes get
//! from the socket to that code and back. Per read batch: one `read`, the
//! answers to every complete request in it appended to one buffer, one
//! `write`. While a short write leaves answers unsent the connection is not
//! read (back-pressure on a client that pipelines without reading).
//!
//! Left out on purpose, as the ceiling it is: timeouts (the twins pay for a
//! deadline per wait or a sweep), lingering after an error response (the
//! socket is closed once the answer is written), and accept back-off
//! beyond a fixed pause on `EMFILE`.

#[path = "common.rs"]
mod common;
#[path = "../../examples/support/http_proto.rs"]
mod http_proto;
#[path = "mio_loop.rs"]
mod mio_loop;

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;

use http_proto::{Input, Next, Parser};
use mio::net::TcpStream;
use mio_loop::After;

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_mio_http [--listen ADDR]

A single-threaded, edge-triggered mio HTTP/1.1 server (the baseline):
GET|HEAD /plaintext and /json, POST /echo, 404 otherwise.
  --listen ADDR   address to listen on (default 127.0.0.1:0)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// One accepted connection.
struct Conn {
    /// The socket, registered READABLE | WRITABLE, edge-triggered.
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    input: Input,
    /// The parser's state between reads (a chunked body in progress).
    parser: Parser,
    /// Answers not yet written: `out[sent..]`.
    out: Vec<u8>,
    /// How much of `out` was written.
    sent: usize,
    /// False from a short write until the next WRITABLE edge.
    writable: bool,
    /// Close once `out` is written (the last answer said so, or an error).
    closing: bool,
}

fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    mio_loop::main(args.listen, "peer_mio_http", |stream| Conn {
        stream,
        input: Input::new(),
        parser: Parser::new(),
        out: Vec::with_capacity(4096),
        sent: 0,
        writable: true,
        closing: false,
    })
}

/// Serves what the connection has to offer: the answers still unsent,
/// then read, answer, write until the socket is drained or the send
/// buffer fills.
impl mio_loop::Connection for Conn {
    fn handle(&mut self, writable: bool, read_closed: bool) -> After {
        let conn = self;
        conn.writable |= writable;
        match flush(conn) {
            Ok(true) => {}
            Ok(false) => return After::Keep,
            Err(_) => return After::Close,
        }
        if conn.closing {
            return After::Close;
        }
        loop {
            let spare = conn.input.spare();
            let room = spare.len();
            let n = match conn.stream.read(spare) {
                Ok(0) => return After::Close,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return After::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return After::Close,
            };
            conn.input.filled(n);
            answer(conn);
            match flush(conn) {
                Ok(true) => {}
                Ok(false) => return After::Keep, // not read again until it drains
                Err(_) => return After::Close,
            }
            if conn.closing {
                return After::Close;
            }
            if n < room && !read_closed {
                return After::Keep; // drained: the next byte raises a new edge
            }
        }
    }
}

/// Appends the answers to every complete request in the input to `out`.
fn answer(conn: &mut Conn) {
    while !conn.closing {
        match conn.parser.next(&mut conn.input) {
            Next::Request(head, body) => {
                conn.closing = !http_proto::respond(&head, body, &mut conn.out);
            }
            Next::NeedMore { .. } => return,
            Next::Continue => conn.out.extend_from_slice(http_proto::CONTINUE),
            Next::Error(status) => {
                http_proto::respond_error(status, &mut conn.out);
                conn.closing = true;
            }
        }
    }
}

/// Writes `out[sent..]`: `Ok(true)` when all of it went out, `Ok(false)`
/// when the send buffer filled first.
fn flush(conn: &mut Conn) -> io::Result<bool> {
    while conn.sent < conn.out.len() {
        if !conn.writable {
            return Ok(false);
        }
        match conn.stream.write(&conn.out[conn.sent..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.sent += n;
                if conn.sent < conn.out.len() {
                    conn.writable = false; // a short write: the buffer is full
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                conn.writable = false;
                return Ok(false);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.out.clear();
    conn.sent = 0;
    Ok(true)
}
