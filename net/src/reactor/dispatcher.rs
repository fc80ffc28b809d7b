//! One TCP connection driven by callbacks: the state machine between the
//! hub's readiness events and the [`Handler`]'s callbacks.
//!
//! # One dispatch
//!
//! The hub calls [`Channel::run`] for an event, after it has recorded the
//! event's bits in the registration's readiness cache (a connection also
//! runs itself for work it scheduled). A run looks that cache up once
//! ([`Registration::with_cache`]) and lends it to every step and to the
//! handler's [`Context`]. It goes through fixed steps, each skipped when it
//! has nothing to do:
//!
//! ```text
//!   0. error     the cache has ERROR -> take_error, close on it
//!   1. connect   outgoing connect finished? -> handle_connect (or the error)
//!   2. write     flush the output FIFO; emptied -> handle_write
//!   3. read      while reading is allowed and the socket may have data:
//!                    handle_read            (it calls cx.recv until WouldBlock)
//!   4. eof       recv returned 0 -> handle_eof (default: close gracefully)
//!   5. write     flush what steps 3-4 queued
//!   6. close     closing and nothing left to send -> shut down, linger
//!   7. notify    closed -> handle_error (if an error), handle_close; drop the handler
//!   8. later     budget used up, or work requested from outside -> schedule a run
//! ```
//!
//! Readiness is edge-triggered, so the connection asks the registration's
//! readiness cache ([`ReadyCache::readiness`]) whether a read (write) may
//! not block: the hub sets its bits from events, and every syscall goes
//! through [`ReadyCache::try_once`], which clears them only when the
//! kernel said `WouldBlock` or a short read/write showed the socket drained
//! (full). A handler that stops before `WouldBlock` is therefore called
//! again, as with a level-triggered `select` loop. The connection keeps no
//! readiness of its own: its flags say what the handler asked for and how
//! far a run got.
//!
//! # Rules that keep callbacks simple
//!
//! * **No re-entrance.** Nothing a handler calls (push, close, another
//!   connection's [`Handle`]) ever calls a handler back synchronously. Calls
//!   only change state; notifications come from the connection's own run,
//!   at the end of the current one or in a run scheduled for later.
//! * **No borrow across user code.** The socket and output queue sit in a
//!   `RefCell` borrowed only for one syscall or queue operation, never
//!   while a handler or a producer runs; the handler sits in its own
//!   `RefCell`, borrowed for the whole run.
//! * **Budgets.** A run reads at most `READ_BUDGET` and writes at most
//!   `WRITE_BUDGET` bytes (256 KiB each), then yields: the rest is done in a run
//!   scheduled after the hub's next poll, so one busy connection never
//!   starves the others.
//! * **Errors are events.** Resets, broken pipes and handler panics close
//!   the connection and reach `handle_error` and `handle_close`; nothing
//!   unwinds into the hub.
//!
//! Scheduled runs (budget continuations, work asked for through a
//! [`Handle`], closing timers) are tiny green threads: they sleep for zero
//! time, which puts them after the hub's next poll, then run the connection.
//! They are rare (never on the echo path) and cost a pooled stack each.

use std::cell::RefCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use greenio_runtime::io::{IoCallback, Ready, ReadyCache, Registration};
use mio::net::TcpStream;

use super::conn_core::*;
use super::handler::{Context, Handle, Handler};
use super::listener::Tracker;

/// A connection seen without its handler's type: what [`Handle`]s, the
/// hub's callback and scheduled runs hold.
pub(crate) trait Channel {
    /// The handler-independent state.
    fn shared(&self) -> &ConnCore;
    /// One dispatch, for an event (whose bits are in the registration's
    /// readiness cache by now) or for work the connection scheduled.
    fn run(&self);
}

/// The text of a panic payload for a log line (the runtime's
/// [`payload_str`](greenio_runtime::payload_str), with a stand-in for a
/// payload that is not a string).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    greenio_runtime::payload_str(p).unwrap_or("(non-string panic payload)")
}

/// A connection with its handler.
pub(crate) struct Conn<H> {
    sh: ConnCore,
    /// The handler; `None` once dropped after `handle_close`.
    handler: RefCell<Option<H>>,
}

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Connected (accepted or attached): `handle_connect` runs at once.
    Connected,
    /// An outgoing connect in progress: `handle_connect` runs once it is
    /// established.
    Connecting,
}

/// Registers `sock` with the current hub and starts `handler` on it.
pub(crate) fn start<H: Handler>(
    mut sock: TcpStream,
    handler: H,
    how: Start,
    tracker: Option<Rc<Tracker>>,
) -> io::Result<Handle> {
    let reg = Registration::new(&mut sock)?;
    // The cache starts with both directions ready. A new connection may
    // write at once but waits for the first READABLE edge before it reads
    // (epoll reports data that arrived before the registration); an
    // outgoing connect waits for the edge that ends it.
    let (flags, not_yet) = match how {
        Start::Connected => (FRESH, Ready::READABLE),
        Start::Connecting => (CONNECTING, Ready::ALL),
    };
    reg.clear_readiness(not_yet);
    let conn: Rc<Conn<H>> = Rc::new_cyclic(|w: &Weak<Conn<H>>| {
        let me: Weak<dyn Channel> = w.clone();
        Conn {
            sh: ConnCore::new(me, flags, sock, reg, tracker),
            handler: RefCell::new(Some(handler)),
        }
    });
    let c = conn.clone();
    let cb: IoCallback = Rc::new(move |_, cache| c.run_cached(cache));
    conn.sh.reg.set_callback(Some(cb))?;
    if let Some(t) = &conn.sh.tracker {
        t.add(conn.sh.me.clone());
    }
    if how == Start::Connected {
        conn.run();
    }
    Ok(Handle::new(conn))
}

impl<H: Handler> Channel for Conn<H> {
    fn shared(&self) -> &ConnCore {
        &self.sh
    }

    fn run(&self) {
        let sh = &self.sh;
        if sh.has(BUSY) {
            return; // the cache has the event; the run in progress sees it
        }
        // One lookup of the readiness cache per run, lent to every step and
        // to the handler's Context.
        if let Err(e) = sh.with_cache(|c| self.run_with(c)) {
            // Runs come from the hub's loop; a misused Handle cannot get here.
            log::debug!("greenio reactor: a connection ran off its hub: {e}");
        }
    }
}

impl<H: Handler> Conn<H> {
    /// A run from the hub's dispatch, which lends the cache it already holds.
    fn run_cached(&self, cache: &ReadyCache<'_>) {
        if !self.sh.has(BUSY) {
            self.run_with(cache);
        }
    }

    /// A run, with the readiness cache `c` lent to it.
    fn run_with(&self, c: &ReadyCache<'_>) {
        let sh = &self.sh;
        let f = sh.flags.get();
        if f & DONE != 0 {
            if f & LINGER_ON != 0 {
                sh.linger_drain(c);
            }
            return;
        }
        sh.set(BUSY);
        sh.clear(MORE);
        sh.begin_run();
        self.dispatch(c);
        sh.clear(BUSY);
        if sh.wants_run(c) {
            sh.schedule();
        }
    }

    /// Steps 0-7 of a run, with the handler borrowed, panics caught.
    fn dispatch(&self, c: &ReadyCache<'_>) {
        let sh = &self.sh;
        let mut slot = self.handler.borrow_mut();
        let Some(h) = slot.as_mut() else {
            return;
        };
        let r = panic::catch_unwind(AssertUnwindSafe(|| steps(sh, h, c)));
        if let Err(payload) = r {
            let msg = panic_message(&*payload);
            log::error!(
                "greenio reactor: a handler panicked ({msg}); closing its connection, \
                 the others keep running"
            );
            sh.fail(io::Error::other(format!("handler panicked: {msg}")));
            if !sh.has(NOTIFIED) {
                let again = panic::catch_unwind(AssertUnwindSafe(|| notify(sh, h, c)));
                if again.is_err() {
                    log::error!("greenio reactor: the handler panicked again in handle_close");
                }
            }
            sh.set(NOTIFIED);
            sh.clear(NOTIFY);
        }
        if sh.has(NOTIFIED) {
            let handler = slot.take();
            drop(slot);
            if panic::catch_unwind(AssertUnwindSafe(move || drop(handler))).is_err() {
                log::error!("greenio reactor: a handler panicked while being dropped");
            }
            sh.set(DONE);
            sh.error.borrow_mut().take();
            if let Some(t) = &sh.tracker {
                t.done();
            }
        }
    }
}

/// Steps 0-7 of a run.
fn steps<H: Handler>(sh: &ConnCore, h: &mut H, c: &ReadyCache<'_>) {
    let cx = &mut Context::new(sh, c);
    // The steady state of a connection (readable, nothing queued, nothing
    // pending) skips every step but the read with one test per end.
    if c.readiness().intersects(Ready::ERROR) || sh.has(CONNECTING | FRESH | QUEUED) {
        prologue(sh, h, cx);
    }
    // 3. read
    while (c.readiness().intersects(Ready::READABLE) || sh.has(MISSED)) && sh.may_read() {
        sh.clear(MISSED | PROGRESS);
        h.handle_read(cx);
        if !sh.has(PROGRESS) || sh.read_left.get() == 0 {
            break;
        }
    }
    if sh.has(EOF | QUEUED | CLOSING | NOTIFY) {
        epilogue(sh, h, cx);
    }
}

/// Steps 0-2 of a run: socket error, connect, first flush.
fn prologue<H: Handler>(sh: &ConnCore, h: &mut H, cx: &mut Context<'_>) {
    let c = cx.cache;
    let ready = c.readiness();
    // 0. error
    if ready.intersects(Ready::ERROR) {
        // Handled once: the error is fetched (or the connect check below
        // fetches it), and a short read may clear READABLE again.
        c.clear(Ready::ERROR);
        if !sh.has(CONNECTING | CLOSED) {
            match sh.with_sock(|s| s.take_error()) {
                Ok(Some(e)) | Err(e) => sh.fail(e),
                Ok(None) => {}
            }
        }
    }
    // 1. connect
    if sh.has(CONNECTING) && !sh.has(CLOSED) && ready.intersects(Ready::ALL) {
        match sh.finish_connect() {
            // The edge that ended the connect set WRITABLE.
            Ok(true) => {
                sh.clear(CONNECTING);
                sh.set(FRESH);
            }
            Ok(false) => c.clear(Ready::ALL),
            Err(e) => sh.fail(e),
        }
    }
    if sh.has(FRESH) && !sh.has(CLOSED) {
        sh.clear(FRESH);
        h.handle_connect(cx);
    }
    // 2. write
    write_side(sh, h, cx);
}

/// Steps 4-7 of a run: EOF, second flush, close, notifications.
fn epilogue<H: Handler>(sh: &ConnCore, h: &mut H, cx: &mut Context<'_>) {
    // 4. eof
    if sh.has(EOF) && !sh.has(EOF_SEEN | CLOSED) {
        sh.set(EOF_SEEN);
        h.handle_eof(cx);
    }
    // 5. write what reads queued
    write_side(sh, h, cx);
    // 6. close
    if sh.has(CLOSING) && !sh.has(CLOSED) && sh.out_is_empty() {
        sh.finish_close(cx.cache);
    }
    // 7. notify
    notify(sh, h, cx.cache);
}

fn write_side<H: Handler>(sh: &ConnCore, h: &mut H, cx: &mut Context<'_>) {
    let c = cx.cache;
    if sh.out_is_empty()
        || sh.has(CLOSED | CONNECTING | FRESH)
        || !c.readiness().intersects(Ready::WRITABLE)
    {
        return;
    }
    match sh.flush(c) {
        Flush::Drained => {
            if !sh.has(CLOSING | CLOSED) {
                h.handle_write(cx);
            }
        }
        Flush::Budget => sh.set(MORE),
        Flush::Blocked | Flush::Closed => {}
    }
}

fn notify<H: Handler>(sh: &ConnCore, h: &mut H, c: &ReadyCache<'_>) {
    if !sh.has(NOTIFY) || sh.has(NOTIFIED) {
        return;
    }
    sh.clear(NOTIFY);
    sh.set(NOTIFIED);
    let cx = &mut Context::new(sh, c);
    let err = sh.error.borrow_mut().take();
    if let Some(e) = err {
        h.handle_error(cx, &e);
    }
    h.handle_close(cx);
}
