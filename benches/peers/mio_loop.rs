//! The event loop the hand-written mio peers share (`mio_echo.rs`,
//! `mio_http.rs`): one `Poll`, a slab of connections indexed by token,
//! every socket registered once for READABLE | WRITABLE, edge-triggered,
//! and never re-registered; accepting pauses for [`ACCEPT_BACKOFF`] when
//! the process runs out of file descriptors. A peer supplies only what a
//! connection does when its socket is ready ([`Connection`]).
//!
//! A slot freed in one batch of events may be reused by an accept in the
//! same batch; a stale event for it then costs one read that returns
//! `WouldBlock`, nothing more.
//!
//! Include it next to `common.rs`: `#[path = "mio_loop.rs"] mod mio_loop;`.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::common;

/// Token of the listening socket.
const LISTENER: Token = Token(usize::MAX);
/// Token of the waker the signal thread uses to stop the loop.
const STOP: Token = Token(usize::MAX - 1);
/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// What to do with a connection after handling its event.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Keep it; wait for its next event.
    Keep,
    /// Close it: end of stream, an error, or the protocol is done.
    Close,
}

/// One accepted connection of a peer.
pub trait Connection {
    /// The socket is ready. `writable`: the event was a WRITABLE edge, an
    /// error or a hang-up, so a write may not block (or reports the
    /// error). `read_closed`: the event carried the peer's FIN (read on to
    /// the end: no further edge will come).
    fn handle(&mut self, writable: bool, read_closed: bool) -> After;
}

/// [`serve`] as a peer's `main` ends: exit status 0 after a stop signal,
/// or 1 after printing `name: error`.
pub fn main<C: Connection>(
    addr: SocketAddr,
    name: &str,
    new: impl FnMut(TcpStream) -> C,
) -> std::process::ExitCode {
    match serve(addr, name, new) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves `addr` until SIGINT or SIGTERM, making a connection with `new`
/// for every accepted (non-blocking, `TCP_NODELAY`) stream; `name` prefixes
/// messages.
pub fn serve<C: Connection>(
    addr: SocketAddr,
    name: &str,
    mut new: impl FnMut(TcpStream) -> C,
) -> io::Result<()> {
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
    let mut slab = Slab {
        conns: Vec::new(),
        free: Vec::new(),
    };
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
            accept_retry = slab.accept_all(&listener, &poll, name, &mut new);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_retry = slab.accept_all(&listener, &poll, name, &mut new),
                STOP => {
                    drop(waker);
                    return Ok(());
                }
                Token(slot) => {
                    let Some(Some(conn)) = slab.conns.get_mut(slot) else {
                        continue;
                    };
                    let writable =
                        event.is_writable() || event.is_error() || event.is_write_closed();
                    if conn.handle(writable, event.is_read_closed()) == After::Close {
                        // Dropping the stream closes it, which also removes
                        // it from the epoll set.
                        slab.conns[slot] = None;
                        slab.free.push(slot);
                    }
                }
            }
        }
    }
}

/// The connections, indexed by token, and the free slots.
struct Slab<C> {
    conns: Vec<Option<C>>,
    free: Vec<usize>,
}

impl<C: Connection> Slab<C> {
    /// Accepts every pending connection. Returns when to try again if
    /// accepting must pause because the process ran out of descriptors.
    fn accept_all(
        &mut self,
        listener: &TcpListener,
        poll: &Poll,
        name: &str,
        new: &mut impl FnMut(TcpStream) -> C,
    ) -> Option<Instant> {
        loop {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    eprintln!("{name}: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                    return Some(Instant::now() + ACCEPT_BACKOFF);
                }
                // ECONNABORTED and the like concern one connection only.
                Err(_) => continue,
            };
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let interest = Interest::READABLE | Interest::WRITABLE;
            if stream.set_nodelay(true).is_err()
                || poll
                    .registry()
                    .register(&mut stream, Token(slot), interest)
                    .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.conns[slot] = Some(new(stream));
        }
    }
}
