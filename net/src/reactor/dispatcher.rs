//! One TCP connection driven by callbacks: the state machine between the
//! hub's readiness events and the [`Handler`]'s callbacks.
//!
//! # One dispatch
//!
//! The hub calls [`Channel::run`] with the readiness bits of an event (or
//! with none, for work scheduled by the connection itself). A run goes
//! through fixed steps, each skipped when it has nothing to do:
//!
//! ```text
//!   note the event's bits in the flags (READABLE, WRITABLE, HUP, SOCKERR)
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
//! Readiness is edge-triggered, so the connection keeps its own cache of
//! "a read (write) may not block" bits, set by events and cleared only when
//! the kernel said `WouldBlock` or a short read/write showed the socket
//! drained (full). A handler that stops before `WouldBlock` is therefore
//! called again, as with a level-triggered `select` loop.
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

use greenio_runtime::io::{IoCallback, Ready, Registration};
use mio::net::TcpStream;

use super::conn_core::*;
use super::handler::{Context, Handle, Handler};
use super::listener::Tracker;

/// A connection seen without its handler's type: what [`Handle`]s, the
/// hub's callback and scheduled runs hold.
pub(crate) trait Channel {
    /// The handler-independent state.
    fn shared(&self) -> &ConnCore;
    /// One dispatch: `ev` are the event's readiness bits (empty for a
    /// scheduled run).
    fn run(&self, ev: Ready);
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
    let flags = match how {
        Start::Connected => FRESH | WRITABLE,
        Start::Connecting => CONNECTING,
    };
    let conn: Rc<Conn<H>> = Rc::new_cyclic(|w: &Weak<Conn<H>>| {
        let me: Weak<dyn Channel> = w.clone();
        Conn {
            sh: ConnCore::new(me, flags, sock, tracker),
            handler: RefCell::new(Some(handler)),
        }
    });
    let c = conn.clone();
    let cb: IoCallback = Rc::new(move |ev| c.run(ev));
    reg.set_callback(Some(cb))?;
    conn.sh.io.borrow_mut().reg = Some(reg);
    if let Some(t) = &conn.sh.tracker {
        t.add(conn.sh.me.clone());
    }
    if how == Start::Connected {
        conn.run(Ready::EMPTY);
    }
    Ok(Handle::new(conn))
}

impl<H: Handler> Channel for Conn<H> {
    fn shared(&self) -> &ConnCore {
        &self.sh
    }

    fn run(&self, ev: Ready) {
        let sh = &self.sh;
        sh.note(ev);
        let f = sh.flags.get();
        if f & BUSY != 0 {
            return; // noted; the run in progress sees it
        }
        if f & DONE != 0 {
            if f & LINGER_ON != 0 {
                sh.linger_drain();
            }
            return;
        }
        sh.set(BUSY);
        sh.clear(MORE);
        sh.begin_run();
        self.dispatch();
        sh.clear(BUSY);
        if sh.wants_run() {
            sh.schedule();
        }
    }
}

impl<H: Handler> Conn<H> {
    /// Steps 1-7 of a run, with the handler borrowed, panics caught.
    fn dispatch(&self) {
        let sh = &self.sh;
        let mut slot = self.handler.borrow_mut();
        let Some(h) = slot.as_mut() else {
            return;
        };
        let r = panic::catch_unwind(AssertUnwindSafe(|| steps(sh, h)));
        if let Err(payload) = r {
            let msg = panic_message(&*payload);
            log::error!(
                "greenio reactor: a handler panicked ({msg}); closing its connection, \
                 the others keep running"
            );
            sh.fail(io::Error::other(format!("handler panicked: {msg}")));
            if !sh.has(NOTIFIED) {
                let again = panic::catch_unwind(AssertUnwindSafe(|| notify(sh, h)));
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

/// Steps 1-7 of a run.
fn steps<H: Handler>(sh: &ConnCore, h: &mut H) {
    let cx = &mut Context::new(sh);
    // The steady state of a connection (readable, nothing queued, nothing
    // pending) skips every step but the read with one test per end.
    if sh.has(SOCKERR | CONNECTING | FRESH | QUEUED) {
        prologue(sh, h, cx);
    }
    // 3. read
    while sh.has(READABLE | MISSED) && sh.may_read() {
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

/// Steps 1-2 of a run: socket error, connect, first flush.
fn prologue<H: Handler>(sh: &ConnCore, h: &mut H, cx: &mut Context<'_>) {
    if sh.has(SOCKERR) {
        sh.clear(SOCKERR);
        if !sh.has(CONNECTING | CLOSED) {
            match sh.with_sock(|s| s.take_error()) {
                Ok(Some(e)) | Err(e) => sh.fail(e),
                Ok(None) => {}
            }
        }
    }
    // 1. connect
    if sh.has(CONNECTING) && !sh.has(CLOSED) && sh.has(READABLE | WRITABLE) {
        match sh.finish_connect() {
            Ok(true) => {
                sh.clear(CONNECTING);
                sh.set(FRESH | WRITABLE);
            }
            Ok(false) => sh.clear(READABLE | WRITABLE),
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
        sh.finish_close();
    }
    // 7. notify
    notify(sh, h);
}

fn write_side<H: Handler>(sh: &ConnCore, h: &mut H, cx: &mut Context<'_>) {
    if sh.out_is_empty() || !sh.has(WRITABLE) || sh.has(CLOSED | CONNECTING | FRESH) {
        return;
    }
    match sh.flush() {
        Flush::Drained => {
            if !sh.has(CLOSING | CLOSED) {
                h.handle_write(cx);
            }
        }
        Flush::Budget => sh.set(MORE),
        Flush::Blocked | Flush::Closed => {}
    }
}

fn notify<H: Handler>(sh: &ConnCore, h: &mut H) {
    if !sh.has(NOTIFY) || sh.has(NOTIFIED) {
        return;
    }
    sh.clear(NOTIFY);
    sh.set(NOTIFIED);
    let cx = &mut Context::new(sh);
    let err = sh.error.borrow_mut().take();
    if let Some(e) = err {
        h.handle_error(cx, &e);
    }
    h.handle_close(cx);
}
