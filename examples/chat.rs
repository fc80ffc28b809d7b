//! chat: a line-based chat room, written as straight-line green-thread
//! code. Each client has two green threads: a reader running the protocol
//! loop below (read a line, act on it, repeat) and a writer draining the
//! client's bounded outgoing queue into its socket, so a client that stops
//! reading holds up nobody but itself.
//!
//! Run it and poke it (two terminals, or more):
//!
//! ```text
//! cargo run --example chat          # listening on 127.0.0.1:7001
//! nc 127.0.0.1 7001
//! /nick alice
//! hello everyone
//! /who
//! /quit
//! ```
//!
//! The protocol (lines end in LF; a trailing CR is stripped):
//!
//! - on connect: a greeting line starting with `* ` that says how to set a
//!   nick;
//! - `/nick NAME` (1-32 of `A-Z a-z 0-9 _ -`): `* you are now NAME`; the
//!   others with a nick see `* NAME joined` (first nick) or
//!   `* OLD is now NAME`; errors `! nick NAME is taken`, `! invalid nick`;
//! - a plain line goes to everyone else with a nick as `<NAME> text`, never
//!   back to its sender (before a nick: `! set a nick first: /nick NAME`);
//!   empty lines are ignored;
//! - `/who`: `* users: a, b, c` (sorted); `/quit`: `* bye`, then the server
//!   closes; the others see `* NAME left` (also when a client just
//!   disconnects); any other `/x`: `! unknown command /x`;
//! - `! invalid utf-8` (the line is dropped) and `! line too long` (over
//!   4096 bytes; the rest of the line is skipped; memory stays bounded
//!   however long it is); the connection stays;
//! - lines from one sender reach every receiver in the order sent;
//! - a client more than about 1 MiB behind (it stopped reading) is
//!   disconnected, and the others see `* NAME left`.
//!
//! Options: `--listen ADDR` (port 0 picks a free port). SIGINT/SIGTERM stop
//! it (exit 0). `GREENIO_LOG=info` logs disconnected slow clients.
//!
//! `examples/chat_callback.rs` is the same server in the callback style;
//! both pass the tests in `tests/util/chat_protocol.rs`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenio::net::{Line, LineReader, Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};
use greenio::sync::{bounded, Mutex, Receiver, Sender};

#[path = "support/cli.rs"]
mod cli;

/// The longest line a client may send, CR and LF not counted.
const MAX_LINE: usize = 4096;
/// Bytes queued for a client before it counts as not reading.
const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Lines queued for a client before it counts as not reading (the channel's
/// capacity; with short lines this bound comes first).
const MAX_QUEUED_LINES: usize = 16 * 1024;
/// The writer sends queued lines in batches of up to this many bytes.
const WRITE_BATCH: usize = 64 * 1024;
/// How long a leaving client's writer may take to send what is still queued
/// (the `* bye`).
const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// How long clients may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_millis(500);

const GREETING: &str = "* welcome to greenio chat; set a nick with /nick NAME";

/// One client's connection: the reader's loop, from greeting to goodbye.
fn client(conn: TcpStream, peer: SocketAddr, room: &Mutex<Room>) {
    // The writer green thread shares the socket (same hub, so an `Rc`);
    // the room keeps a clone of it, to disconnect a client that lags.
    let conn = Rc::new(conn);
    let for_room = match conn.try_clone() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("{peer}: {e}");
            return;
        }
    };
    let (tx, rx) = bounded(MAX_QUEUED_LINES);
    let queued = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (conn, queued) = (conn.clone(), queued.clone());
        greenio::spawn(move || write_queue(&conn, rx, &queued))
    };
    let outbox = Outbox { tx, queued };
    let id = room.lock().join(outbox, for_room);
    room.lock().send(id, GREETING);

    let mut lines = LineReader::new(&*conn, MAX_LINE);
    // Until the client closes, resets, or is disconnected by the room.
    while let Ok(Some(line)) = lines.next_line() {
        let mut r = room.lock();
        match line {
            Line::TooLong => r.send(id, "! line too long"),
            Line::Complete(bytes) => match std::str::from_utf8(bytes) {
                Err(_) => r.send(id, "! invalid utf-8"),
                Ok(text) => {
                    if let Next::Quit = r.handle(id, text) {
                        break;
                    }
                }
            },
        }
    }

    // Leaving drops the queue's sender: the writer sends what is queued
    // (`* bye`) and ends. Give it a moment, not forever: a client that
    // stopped reading would keep it parked.
    room.lock().leave(id);
    if greenio::timeout(FLUSH_GRACE, || writer.join()).is_err() {
        let _ = conn.shutdown(Shutdown::Both);
    }
}

/// The writer green thread: sends the client's queued lines until the
/// queue closes (the client left) or the socket fails.
fn write_queue(mut conn: &TcpStream, rx: Receiver<Msg>, queued: &AtomicUsize) {
    let mut batch = Vec::new();
    while let Ok(msg) = rx.recv() {
        // Take whatever else is already queued too: one write per burst.
        batch.clear();
        batch.extend_from_slice(msg.as_bytes());
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(msg) => batch.extend_from_slice(msg.as_bytes()),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        if conn.write_all(&batch).is_err() {
            // Gone: make sure the reader notices too.
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// A line on its way to clients (LF included), shared by every queue it
/// is in.
type Msg = Arc<str>;

/// The sending side of one client's outgoing queue.
struct Outbox {
    tx: Sender<Msg>,
    /// Bytes in the queue; the writer subtracts what it takes out.
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// Queues `msg`; `false` if the client is too far behind to take it.
    fn offer(&self, msg: &Msg) -> bool {
        let queued = self.queued.fetch_add(msg.len(), Ordering::Relaxed) + msg.len();
        queued <= MAX_QUEUED_BYTES && self.tx.try_send(msg.clone()).is_ok()
    }
}

/// A connected client, as the room sees it.
struct Member {
    nick: Option<String>,
    outbox: Outbox,
    /// A clone of the client's socket, to disconnect it.
    conn: TcpStream,
    /// Disconnected for lagging; its reader will make it leave.
    kicked: bool,
}

/// Everyone connected, behind one lock. Nothing here parks: sending is
/// queueing, so the lock is held only for moments.
#[derive(Default)]
struct Room {
    members: HashMap<u64, Member>,
    next_id: u64,
}

/// What the reader does after a line.
enum Next {
    Read,
    Quit,
}

impl Room {
    /// Acts on one line of text from client `id`.
    fn handle(&mut self, id: u64, text: &str) -> Next {
        if text.is_empty() {
            return Next::Read;
        }
        if !text.starts_with('/') {
            match self.members[&id].nick.clone() {
                Some(nick) => self.broadcast(Some(id), &format!("<{nick}> {text}")),
                None => self.send(id, "! set a nick first: /nick NAME"),
            }
            return Next::Read;
        }
        let (command, arg) = text.split_once(' ').unwrap_or((text, ""));
        match command {
            "/nick" => self.set_nick(id, arg.trim()),
            "/who" => {
                let mut nicks: Vec<&str> = self
                    .members
                    .values()
                    .filter_map(|m| m.nick.as_deref())
                    .collect();
                nicks.sort_unstable();
                let who = format!("* users: {}", nicks.join(", "));
                self.send(id, &who);
            }
            "/quit" => {
                self.send(id, "* bye");
                return Next::Quit;
            }
            other => self.send(id, &format!("! unknown command {other}")),
        }
        Next::Read
    }

    fn set_nick(&mut self, id: u64, name: &str) {
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return self.send(id, "! invalid nick");
        }
        let old = self.members[&id].nick.clone();
        if old.as_deref() != Some(name) {
            if self
                .members
                .values()
                .any(|m| m.nick.as_deref() == Some(name))
            {
                return self.send(id, &format!("! nick {name} is taken"));
            }
            if let Some(me) = self.members.get_mut(&id) {
                me.nick = Some(name.to_string());
            }
            let news = match &old {
                Some(old) => format!("* {old} is now {name}"),
                None => format!("* {name} joined"),
            };
            self.broadcast(Some(id), &news);
        }
        self.send(id, &format!("* you are now {name}"));
    }

    /// Adds a client (without a nick yet) and returns its id.
    fn join(&mut self, outbox: Outbox, conn: TcpStream) -> u64 {
        self.next_id += 1;
        let member = Member {
            nick: None,
            outbox,
            conn,
            kicked: false,
        };
        self.members.insert(self.next_id, member);
        self.next_id
    }

    /// Removes a client; if it had a nick, the others see it leave.
    fn leave(&mut self, id: u64) {
        if let Some(Member {
            nick: Some(nick), ..
        }) = self.members.remove(&id)
        {
            self.broadcast(None, &format!("* {nick} left"));
        }
    }

    /// Queues one line for client `id`.
    fn send(&mut self, id: u64, text: &str) {
        let msg: Msg = Arc::from(format!("{text}\n"));
        if let Some(m) = self.members.get_mut(&id) {
            deliver(m, &msg);
        }
    }

    /// Queues one line for everyone with a nick except `except`.
    fn broadcast(&mut self, except: Option<u64>, text: &str) {
        let msg: Msg = Arc::from(format!("{text}\n"));
        for (&id, m) in &mut self.members {
            if Some(id) != except && m.nick.is_some() {
                deliver(m, &msg);
            }
        }
    }
}

/// Queues `msg` for `m`, or disconnects `m` if it is too far behind. The
/// shutdown wakes its reader, which then leaves the room (`* NAME left`),
/// and its writer; the reset (linger 0) drops what the kernel still holds
/// for it.
fn deliver(m: &mut Member, msg: &Msg) {
    if m.kicked || m.outbox.offer(msg) {
        return;
    }
    m.kicked = true;
    log::info!(
        "{}: over {MAX_QUEUED_BYTES} bytes behind, disconnecting",
        m.nick.as_deref().unwrap_or("a client without a nick")
    );
    let _ = m.conn.set_linger(Some(Duration::ZERO));
    let _ = m.conn.shutdown(Shutdown::Both);
}

fn main() -> ExitCode {
    let listen = cli::parse_or_exit("chat", USAGE, cli::listen_only("127.0.0.1:7001"));
    cli::init_logger();

    let result = greenio::run(move || -> io::Result<()> {
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let room = Arc::new(Mutex::new(Room::default()));
        let server = Server::builder()
            .name("chat")
            .bind(listen.as_str(), move |conn, peer| client(conn, peer, &room))?;

        // SIGINT/SIGTERM: stop accepting, give open connections GRACE.
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("chat", result)
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: chat [--listen ADDR]

  --listen ADDR    address to listen on (default 127.0.0.1:7001; port 0 picks a free port)
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (error, warn, info, debug, or
greenio=debug,warn; default warn).";
