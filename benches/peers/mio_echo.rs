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
//! re-registered. Per echoed message the steady state costs one `read` and
//! one `write`, plus a share of one `epoll_wait`:
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

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_mio_echo [--listen ADDR] [--buf BYTES]

A single-threaded, edge-triggered mio echo server (the benchmark baseline).
  --listen ADDR   address to listen on (default 127.0.0.1:0)
  --buf BYTES     per-connection buffer (default 4096)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// Token of the listening socket.
const LISTENER: Token = Token(usize::MAX);
/// Token of the waker the signal thread uses to stop the loop.
const STOP: Token = Token(usize::MAX - 1);
/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

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

/// What to do with a connection after handling its event.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// Keep it; wait for its next event.
    Keep,
    /// Close it: end of stream or an error.
    Close,
}

/// Parses the command line and serves until a stop signal.
fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    match serve(args.listen, args.buf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_mio_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
fn serve(addr: std::net::SocketAddr, buf_size: usize) -> io::Result<()> {
    let mut poll = Poll::new()?;
    // The loop keeps its own reference: were the signal thread's the last,
    // dropping it would close the eventfd before the loop saw the wakeup.
    let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
    let signal_waker = Arc::clone(&waker);
    common::on_stop_signal(move || {
        if signal_waker.wake().is_err() {
            std::process::exit(0);
        }
    })?;

    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    common::announce(listener.local_addr()?)?;

    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // When accepting resumes after EMFILE/ENFILE: the listener's edge was
    // consumed, so the loop must come back and accept again by itself.
    let mut accept_retry: Option<Instant> = None;

    loop {
        let timeout = accept_retry.map(|at| at.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if accept_retry.is_some_and(|at| Instant::now() >= at) {
            accept_retry = accept_all(&listener, &poll, &mut conns, &mut free, buf_size);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    accept_retry = accept_all(&listener, &poll, &mut conns, &mut free, buf_size);
                }
                STOP => {
                    drop(waker);
                    return Ok(());
                }
                Token(slot) => {
                    let Some(Some(conn)) = conns.get_mut(slot) else {
                        continue;
                    };
                    if event.is_writable() || event.is_error() || event.is_write_closed() {
                        // An error or hang-up: the next write reports it.
                        conn.writable = true;
                    }
                    if handle(conn, event.is_read_closed()) == After::Close {
                        // Dropping the stream closes it, which also removes
                        // it from the epoll set.
                        conns[slot] = None;
                        free.push(slot);
                    }
                }
            }
        }
    }
}

/// Accepts every pending connection. Returns when to try again if accepting
/// must pause because the process ran out of file descriptors.
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    buf_size: usize,
) -> Option<Instant> {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                eprintln!("peer_mio_echo: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                return Some(Instant::now() + ACCEPT_BACKOFF);
            }
            // ECONNABORTED and the like concern one connection only.
            Err(_) => continue,
        };
        let slot = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        if stream.set_nodelay(true).is_err()
            || poll
                .registry()
                .register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
        {
            free.push(slot);
            continue;
        }
        conns[slot] = Some(Conn {
            stream,
            buf: vec![0; buf_size].into_boxed_slice(),
            start: 0,
            end: 0,
            writable: true,
        });
    }
}

/// Echoes what the connection has to offer: first the bytes still pending
/// from a short write, then reads until the socket is drained or the send
/// buffer fills. `read_closed` says the event carried the peer's FIN.
fn handle(conn: &mut Conn, read_closed: bool) -> After {
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
