//! peer_mio_echo: a hand-written, single-threaded mio echo server: the
//! practical ceiling for a server on one readiness loop, and the baseline the
//! side-by-side benchmark (issue 7) compares everything to.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_mio_echo --listen 127.0.0.1:7000
//! nc 127.0.0.1 7000                    # type a line, get it back
//! taskset -c 1 target/release/examples/echo_client --addr 127.0.0.1:7000 \
//!     -c 100 --secs 5 --server-pid "$(pgrep -n peer_mio_echo)"
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`), `--buf BYTES` (each
//! connection's buffer, default 4096). Stops with exit status 0 on SIGINT or
//! SIGTERM.
//!
//! # Design
//!
//! One `mio::Poll`, a slab of connections indexed by token, every socket
//! registered once for READABLE | WRITABLE, edge-triggered, and never
//! re-registered (the loop is `mio_loop.rs`, shared with `mio_http.rs`).
//! Per echoed message the steady state costs one `read` and one `write`,
//! plus a share of one `epoll_wait`:
//!
//! - A read that returns less than the buffer drained the socket. epoll(7)
//!   allows stopping there for stream sockets instead of reading again until
//!   `EAGAIN`: data that arrives later raises a new edge. The exception is an
//!   event that already carries the peer's FIN (`is_read_closed`): then the
//!   loop reads on to the end of stream, because no further edge will come.
//! - What is read is written straight back from the same buffer. A short
//!   write means the socket's send buffer is full: the unsent bytes stay in the
//!   buffer, the connection stops reading (back-pressure on the client), and
//!   the next WRITABLE edge resumes it. Until that edge no write is tried.
//! - A slot freed in one batch of events may be reused by an accept in the
//!   same batch; a stale event for it then costs one read that returns
//!   `WouldBlock`, nothing more.
//!
//! Rejected: level-triggered registration (one more `epoll_wait` wakeup per
//! message for the writable side, or a `epoll_ctl` to switch interest per
//! message), and a shared read buffer (bytes a full send buffer leaves unsent
//! must live somewhere per connection anyway).

#[path = "common.rs"]
mod common;
#[path = "mio_loop.rs"]
mod mio_loop;

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;

use mio::net::TcpStream;
use mio_loop::After;

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_mio_echo [--listen ADDR] [--buf BYTES]

A single-threaded, edge-triggered mio echo server (the benchmark baseline).
  --listen ADDR   address to listen on (default 127.0.0.1:0)
  --buf BYTES     per-connection buffer (default 4096)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// One accepted connection.
#[derive(Debug)]
struct Conn {
    /// The socket, registered READABLE | WRITABLE, edge-triggered.
    stream: TcpStream,
    /// Read buffer; `buf[start..end]` holds bytes read but not yet written back.
    buf: Box<[u8]>,
    /// Start of the unsent bytes in `buf`.
    start: usize,
    /// End of the unsent bytes in `buf`; `start == end` when nothing is pending.
    end: usize,
    /// False from a short write until the next WRITABLE edge: writing before
    /// then would only return `WouldBlock`.
    writable: bool,
}

/// Parses the command line and serves until a stop signal.
fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    let buf_size = args.buf;
    mio_loop::main(args.listen, "peer_mio_echo", |stream| Conn {
        stream,
        buf: vec![0; buf_size].into_boxed_slice(),
        start: 0,
        end: 0,
        writable: true,
    })
}

/// Echoes what the connection has to offer: first the bytes still pending
/// from a short write, then reads until the socket is drained or the send
/// buffer fills.
impl mio_loop::Connection for Conn {
    fn handle(&mut self, writable: bool, read_closed: bool) -> After {
        let conn = self;
        // An error or hang-up counts as writable: the next write reports it.
        conn.writable |= writable;
        if conn.start < conn.end {
            if !conn.writable {
                return After::Keep;
            }
            match write_pending(conn) {
                Ok(true) => {}
                Ok(false) => return After::Keep,
                Err(_) => return After::Close,
            }
        }
        loop {
            match conn.stream.read(&mut conn.buf) {
                Ok(0) => return After::Close,
                Ok(n) => {
                    conn.start = 0;
                    conn.end = n;
                    match write_pending(conn) {
                        Ok(true) => {}
                        Ok(false) => return After::Keep,
                        Err(_) => return After::Close,
                    }
                    if n < conn.buf.len() && !read_closed {
                        // Drained: the next byte to arrive raises a new edge.
                        return After::Keep;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return After::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return After::Close,
            }
        }
    }
}

/// Writes `buf[start..end]`. Returns `Ok(true)` when all of it went out and
/// `Ok(false)` when the send buffer filled first (the rest stays pending and
/// `writable` is cleared until the next WRITABLE edge).
fn write_pending(conn: &mut Conn) -> io::Result<bool> {
    while conn.start < conn.end {
        match conn.stream.write(&conn.buf[conn.start..conn.end]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.start += n;
                if conn.start < conn.end {
                    // A short write on a stream socket: the buffer is full.
                    conn.writable = false;
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
    conn.start = 0;
    conn.end = 0;
    Ok(true)
}
