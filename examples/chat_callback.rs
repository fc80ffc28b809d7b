//! chat_callback: the chat server in the callback style (async_chat), on the
//! same hub loop as green threads. The twin of `examples/chat.rs`: same
//! command line, same protocol, same tests.
//!
//! Run it and poke it (two terminals, or more):
//!
//! ```text
//! cargo run --release --example chat_callback    # listening on 127.0.0.1:7001
//! nc 127.0.0.1 7001
//! /nick alice
//! hello everyone
//! /who
//! /quit
//! ```
//!
//! The protocol (lines end in LF; a trailing CR is stripped):
//!
//! - on connect: a greeting line starting with `* `;
//! - `/nick NAME` (1-32 of `A-Z a-z 0-9 _ -`): `* you are now NAME`; the
//!   others see `* NAME joined` or `* OLD is now NAME`; errors
//!   `! nick NAME is taken`, `! invalid nick`;
//! - a plain line goes to everyone else with a nick as `<NAME> text`
//!   (before a nick: `! set a nick first: /nick NAME`);
//! - `/who`: `* users: a, b, c` (sorted); `/quit`: `* bye`, then close;
//!   the others see `* NAME left` (also when a client just disconnects);
//!   anything else starting with `/`: `! unknown command /x`;
//! - `! invalid utf-8` and `! line too long` (over 4096 bytes; the rest of
//!   the line is skipped, memory stays bounded); the connection stays;
//! - a client whose unsent output passes 1 MiB (it stopped reading) is
//!   disconnected, and the others see `* NAME left`.
//!
//! Options: `--listen ADDR` (port 0 picks a free port). SIGINT/SIGTERM stop
//! it (exit 0).
//!
//! # Callbacks versus green threads
//!
//! `chat.rs` keeps each client's state on its green thread's stack: a loop
//! reads a line, acts, repeats. Here each client is a `Client` struct whose
//! methods the reactor calls with one complete line at a time
//! (`found_terminator`); async_chat does the line framing, the length limit
//! and the output queue (the green version needs a writer thread and a
//! bounded channel per client for the same effect). The room is shared by
//! reference counting on the one hub thread: no locks, because no callback
//! ever runs concurrently with another.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use greenio::net::reactor::{
    self, AsyncChat, ChatContext, ChatHandler, Handle, Overflow, Terminator,
};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;

/// The longest line, CR excluded.
const MAX_LINE: usize = 4096;
/// Unsent output a client may have before it is cut off.
const MAX_BACKLOG: usize = 1 << 20;
/// How long clients may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_millis(500);

/// Everyone with a nick, by nick.
#[derive(Default)]
struct Room {
    users: HashMap<String, Handle>,
}

impl Room {
    /// Sends `line` to every user except `except`. A user that cannot take
    /// it is disconnected by the reactor; its `handle_close` says it left.
    fn broadcast(&self, except: Option<&str>, line: &str) {
        for (nick, h) in &self.users {
            if Some(nick.as_str()) != except {
                let _ = h.push(line.as_bytes());
            }
        }
    }
}

/// One connected client.
struct Client {
    room: Rc<RefCell<Room>>,
    nick: Option<String>,
}

impl ChatHandler for Client {
    fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
        cx.set_output_limit(MAX_BACKLOG);
        // A push fails only once the connection is closing (the client
        // left, or fell MAX_BACKLOG behind); handle_close cleans up, so the
        // pushes below ignore the result.
        let _ = cx.push(b"* welcome to greenio chat; set a nick with /nick NAME\n");
    }

    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            let _ = cx.push(b"! line too long\n");
            return;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            let _ = cx.push(b"! invalid utf-8\n");
            return;
        };
        if line.is_empty() {
            return;
        }
        if !line.starts_with('/') {
            match &self.nick {
                Some(nick) => self
                    .room
                    .borrow()
                    .broadcast(Some(nick), &format!("<{nick}> {line}\n")),
                None => {
                    let _ = cx.push(b"! set a nick first: /nick NAME\n");
                }
            }
            return;
        }
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "/nick" => self.set_nick(cx, arg.trim()),
            "/who" => {
                let mut names: Vec<String> = self.room.borrow().users.keys().cloned().collect();
                names.sort();
                let _ = cx.push(format!("* users: {}\n", names.join(", ")).as_bytes());
            }
            "/quit" => {
                let _ = cx.push(b"* bye\n");
                cx.close(); // handle_close tells the others
            }
            other => {
                let _ = cx.push(format!("! unknown command {other}\n").as_bytes());
            }
        }
    }

    fn record_too_long(&mut self, cx: &mut ChatContext<'_>) -> Overflow {
        let _ = cx.push(b"! line too long\n");
        Overflow::Discard // skip to the end of the line, keep the client
    }

    fn handle_close(&mut self, _cx: &mut ChatContext<'_>) {
        if let Some(nick) = self.nick.take() {
            let mut room = self.room.borrow_mut();
            room.users.remove(&nick);
            room.broadcast(None, &format!("* {nick} left\n"));
        }
    }
}

impl Client {
    fn set_nick(&mut self, cx: &mut ChatContext<'_>, name: &str) {
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let _ = cx.push(b"! invalid nick\n");
            return;
        }
        let mut room = self.room.borrow_mut();
        if self.nick.as_deref() == Some(name) {
            let _ = cx.push(format!("* you are now {name}\n").as_bytes());
            return;
        }
        if room.users.contains_key(name) {
            let _ = cx.push(format!("! nick {name} is taken\n").as_bytes());
            return;
        }
        let news = match self.nick.take() {
            Some(old) => {
                let h = room.users.remove(&old);
                room.users.extend(h.map(|h| (name.to_string(), h)));
                format!("* {old} is now {name}\n")
            }
            None => {
                room.users.insert(name.to_string(), cx.handle());
                format!("* {name} joined\n")
            }
        };
        self.nick = Some(name.to_string());
        let _ = cx.push(format!("* you are now {name}\n").as_bytes());
        room.broadcast(Some(name), &news);
    }
}

fn main() -> ExitCode {
    let listen = cli::parse_or_exit("chat_callback", USAGE, cli::listen_only("127.0.0.1:7001"));
    cli::init_logger();
    // Resolve before the hub starts: a reactor call never blocks.
    let addr = match resolve(&listen) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("chat_callback: {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };

    let result = greenio::run(move || -> io::Result<()> {
        let mut signals = Signals::new(&[SIGINT, SIGTERM])?;
        let room = Rc::new(RefCell::new(Room::default()));
        let listener = reactor::listen(addr, move |_peer| {
            let client = Client {
                room: room.clone(),
                nick: None,
            };
            // One more than MAX_LINE so that a line of MAX_LINE bytes plus
            // its CR still fits; found_terminator checks the exact limit.
            AsyncChat::new(client)
                .terminator(Terminator::LF)
                .max_record(MAX_LINE + 1)
        })?;
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;

        let sig = signals.recv()?;
        eprintln!("chat_callback: signal {sig}, stopping");
        listener.shutdown(GRACE);
        Ok(())
    });
    cli::exit_status("chat_callback", result)
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: chat_callback [--listen ADDR]

  --listen ADDR    address to listen on (default 127.0.0.1:7001; port 0 picks a free port)
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (error, warn, info, debug, or
greenio=debug,warn; default warn).";

fn resolve(listen: &str) -> io::Result<SocketAddr> {
    listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address for this name"))
}
