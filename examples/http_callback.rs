//! http_callback: the HTTP/1.1 server in the callback style (asyncore's
//! dispatcher), on the same hub loop as green threads. The twin of
//! `examples/http.rs`, with the same routes, limits and command line;
//! compare the two.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --release --example http_callback          # listening on 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/plaintext              # Hello, World!
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/json
//! ```
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--hubs N` (one
//! reactor per hub, all accepting from the same listening socket),
//! `--timeout SECS` (for a request to arrive whole, and for an idle
//! keep-alive connection; default 10), `--max-conns N` (connections served
//! at once per hub; past it a connection gets a 503 and is closed).
//! SIGINT/SIGTERM stop it: it stops accepting, gives open connections a
//! second, closes the rest and exits 0. `GREENIO_LOG=debug` for more logs.
//!
//! What the callback style changes, next to `http.rs`:
//!
//! * **State lives in a struct.** The green twin keeps "where am I in this
//!   request" on its stack and blocks in `read`; here the handler is called
//!   whenever bytes arrive and keeps the input buffer and parser in
//!   [`Http`] between calls.
//! * **Timeouts are a sweep.** A green thread blocks in `read` with a
//!   deadline; a handler has nowhere to block, so one green thread per hub
//!   ticks a clock and closes connections that made no progress for
//!   `--timeout` (the idle-timer wheel of nginx and Twisted's
//!   `TimeoutMixin`, coarser).
//! * **Flow control is a question.** The green twin's `write_all` blocks
//!   while a client does not read; here the reactor stops calling
//!   `handle_read` above its high-water mark, and the handler must stop
//!   parsing buffered requests when `cx.keep_reading()` says so.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use greenio::net::reactor::{self, Accept, Context, Handle, Handler};
use greenio::signal::{Signals, SIGINT, SIGTERM};
use greenio::sync::Event;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/http_cli.rs"]
mod http_cli;
#[path = "support/http_proto.rs"]
mod http_proto;
use http_proto::{Input, Next, Parser, Status, OUT_HIGH_WATER};

/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// One connection: its unparsed input, its parser, the answers not yet
/// pushed, and its entry in the hub's timeout sweep.
struct Http {
    input: Input,
    parser: Parser,
    /// Answers to the current read batch, pushed in one piece.
    out: Vec<u8>,
    hub: Rc<HubState>,
    /// Set in `handle_connect`, once the connection has a handle.
    watch: Option<Rc<Watch>>,
}

impl Handler for Http {
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        // Accepted connections already have TCP_NODELAY (the listener sets it).
        let watch = Rc::new(Watch {
            handle: cx.handle(),
            stamp: Cell::new(self.hub.tick.get()),
            started: Cell::new(false),
        });
        self.hub.watches.borrow_mut().push(watch.clone());
        self.watch = Some(watch);
    }

    /// Answers what is buffered, then reads and answers more until the
    /// socket is drained, the client falls behind, or the connection ends.
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        while self.answer(cx) {
            match cx.recv(self.input.spare()) {
                Ok(n) if n > 0 => self.input.filled(n),
                // Err: WouldBlock, wait for the next event. Ok(0): EOF,
                // handle_eof closes once our answers are out.
                _ => return,
            }
        }
    }

    fn handle_close(&mut self, _cx: &mut Context<'_>) {
        self.hub.live.set(self.hub.live.get() - 1);
    }
}

impl Http {
    /// Answers every complete request in the input, while the reactor
    /// allows reading (it does not while this client's unsent answers are
    /// above its high-water mark), and pushes the answers in one piece.
    /// Returns whether to read more.
    fn answer(&mut self, cx: &mut Context<'_>) -> bool {
        let mut closing = false;
        let more = loop {
            if !cx.keep_reading() {
                break false; // called again once the client caught up
            }
            match self.parser.next(&mut self.input) {
                Next::Request(head, body) => {
                    progress(&self.watch, &self.hub, false);
                    if !http_proto::respond(&head, body, &mut self.out) {
                        closing = true;
                        break false;
                    }
                    if self.out.len() >= OUT_HIGH_WATER {
                        let _ = cx.push(&self.out);
                        self.out.clear();
                    }
                }
                Next::NeedMore { started } => {
                    progress(&self.watch, &self.hub, started);
                    break true;
                }
                Next::Continue => self.out.extend_from_slice(http_proto::CONTINUE),
                Next::Error(status) => {
                    http_proto::respond_error(status, &mut self.out);
                    closing = true;
                    break false;
                }
            }
        };
        if !self.out.is_empty() {
            let _ = cx.push(&self.out);
            self.out.clear();
        }
        if closing {
            cx.close(); // after the last push: later pushes are dropped
        }
        more
    }
}

/// Notes a connection's progress for the timeout sweep: a request
/// completed or none is in (`started` false: the idle time starts now), or
/// part of the next one is buffered (its time starts with its first bytes).
fn progress(watch: &Option<Rc<Watch>>, hub: &HubState, started: bool) {
    if let Some(w) = watch {
        if !started || !w.started.get() {
            w.stamp.set(hub.tick.get());
        }
        w.started.set(started);
    }
}

/// What the timeout sweep knows of a connection.
struct Watch {
    handle: Handle,
    /// The sweep's tick when the connection last went idle (opened, or
    /// completed a request) or the first bytes of its next request came.
    stamp: Cell<u64>,
    /// Part of the next request has arrived (a timeout then gets a 408).
    started: Cell<bool>,
}

/// Per-hub state: the sweep's clock, the connections it watches, and how
/// many connections are open.
struct HubState {
    /// Ticks of the sweep since the hub started serving.
    tick: Cell<u64>,
    /// Every open connection (closed ones are dropped at the next sweep).
    watches: RefCell<Vec<Rc<Watch>>>,
    /// Connections open on this hub.
    live: Cell<usize>,
    /// `--max-conns`.
    max_conns: usize,
}

impl HubState {
    /// One sweep: drop closed connections, close those without progress
    /// for `ticks` ticks (408 if part of a request had arrived).
    fn sweep(&self, ticks: u64) {
        let now = self.tick.get() + 1;
        self.tick.set(now);
        self.watches.borrow_mut().retain(|w| {
            if w.handle.is_closed() {
                return false;
            }
            if now - w.stamp.get() < ticks {
                return true;
            }
            if w.handle.output_len() > 0 {
                // It does not read what we sent: no point in waiting.
                w.handle.abort();
            } else {
                if w.started.get() {
                    let mut out = Vec::new();
                    http_proto::respond_error(Status::RequestTimeout, &mut out);
                    let _ = w.handle.push(&out);
                }
                w.handle.close();
            }
            false
        });
    }
}

/// Makes a handler per accepted connection, or a 503 past `--max-conns`.
struct Acceptor(Rc<HubState>);

impl Accept for Acceptor {
    type Handler = Conn;

    fn handle_accept(&mut self, _peer: SocketAddr) -> Option<Conn> {
        if self.0.live.get() >= self.0.max_conns {
            return Some(Conn::Busy);
        }
        self.0.live.set(self.0.live.get() + 1);
        Some(Conn::Http(Box::new(Http {
            input: Input::new(),
            parser: Parser::new(),
            out: Vec::new(),
            hub: self.0.clone(),
            watch: None,
        })))
    }
}

/// An accepted connection: served, or told the server is busy.
enum Conn {
    Http(Box<Http>),
    Busy,
}

impl Handler for Conn {
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        match self {
            Conn::Http(h) => h.handle_connect(cx),
            Conn::Busy => {
                let mut out = Vec::new();
                http_proto::respond_error(Status::Unavailable, &mut out);
                let _ = cx.push(&out);
                cx.close();
            }
        }
    }

    fn handle_read(&mut self, cx: &mut Context<'_>) {
        match self {
            Conn::Http(h) => h.handle_read(cx),
            Conn::Busy => Handler::handle_read(&mut Discard, cx),
        }
    }

    fn handle_close(&mut self, cx: &mut Context<'_>) {
        if let Conn::Http(h) = self {
            h.handle_close(cx);
        }
    }
}

/// The reactor's default reader: reads and drops.
struct Discard;
impl Handler for Discard {}

/// Serves `listener` on the current hub until `stop` is set.
fn serve_on_this_hub(
    listener: TcpListener,
    opts: &http_cli::Options,
    stop: &Event,
) -> io::Result<()> {
    let hub = Rc::new(HubState {
        tick: Cell::new(0),
        watches: RefCell::new(Vec::new()),
        live: Cell::new(0),
        max_conns: opts.max_conns.unwrap_or(usize::MAX),
    });
    let served = reactor::listen_on(listener, Acceptor(hub.clone()))?;

    // The sweep: a tick a quarter of the timeout (at most a second), so a
    // connection is closed between `timeout` and 1.25 x `timeout`.
    let tick = (opts.timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let ticks = opts.timeout.as_nanos().div_ceil(tick.as_nanos()) as u64;
    let sweeper = greenio::spawn(move || loop {
        greenio::sleep(tick);
        hub.sweep(ticks);
    });

    stop.wait();
    sweeper.cancel();
    served.shutdown(GRACE);
    Ok(())
}

fn main() -> ExitCode {
    let usage = http_cli::usage(
        "http_callback",
        "connections served at once per hub; more get a 503",
    );
    let opts = http_cli::parse_or_exit("http_callback", &usage);
    cli::init_logger();
    // Bind before the hubs start: a reactor call never blocks, and every
    // hub serves a clone of this one socket.
    let listener = match TcpListener::bind(opts.listen.as_str()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("http_callback: {}: {e}", opts.listen);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match greenio::Runtime::builder().hubs(opts.hubs).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http_callback: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Arc::new(opts);
    let result = runtime.run(move || -> io::Result<()> {
        // Listen for the stop signals first, so that a SIGTERM arriving from
        // here on stops us cleanly.
        let mut signals = Signals::new(&[SIGINT, SIGTERM])?;
        let stop = Arc::new(Event::new());
        let mut others = Vec::new();
        for hub in 1..opts.hubs {
            let (l, o, s) = (listener.try_clone()?, opts.clone(), stop.clone());
            others.push(greenio::spawn_on(hub, move || serve_on_this_hub(l, &o, &s)));
        }
        let local = {
            let (l, o, s) = (listener.try_clone()?, opts.clone(), stop.clone());
            greenio::spawn(move || serve_on_this_hub(l, &o, &s))
        };
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;

        // The reactors serve from their hubs' loops while this green
        // thread waits for a signal.
        let sig = signals.recv()?;
        eprintln!("http_callback: signal {sig}, stopping");
        stop.set();
        for h in others.into_iter().chain([local]) {
            match h.join() {
                Ok(r) => r?,
                Err(e) => return Err(io::Error::other(format!("a hub failed: {e:?}"))),
            }
        }
        Ok(())
    });
    cli::exit_status("http_callback", result)
}
