//! finger: an RFC 1288 finger server, one green thread per connection,
//! written as plain blocking code: read one query line, answer, close.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example finger                         # listening on 127.0.0.1:7079
//! printf '\r\n' | nc 127.0.0.1 7079                  # list the users
//! printf 'alice\r\n' | nc 127.0.0.1 7079             # one user, with the plan
//! printf '/W alice\r\n' | nc 127.0.0.1 7079          # the same, "verbose"
//! cargo run --example finger_client -- -l alice@127.0.0.1:7079
//! sudo target/debug/examples/finger --listen 127.0.0.1:79   # then, for the stock client:
//! finger alice@127.0.0.1
//! ```
//!
//! The protocol as served here:
//!
//! - one query line per connection, ending in CRLF (a bare LF is accepted);
//!   the server answers and closes; every reply line ends in CRLF;
//! - empty query: one line per user, login and full name;
//! - `login` or `/W login`: `Login:`, `Name:` and `Plan:` lines (verbose
//!   output is allowed and is the same);
//! - unknown login: `finger: NAME: no such user.`;
//! - any query with an `@` asks us to forward it (RFC 1288 2.5.1):
//!   `finger: forwarding service denied` (3.2.1: off by default);
//! - control characters are removed from everything sent (3.3): the only
//!   bytes below 0x20 on the wire are the CRLF line ends and tabs, and DEL
//!   (0x7f) never appears;
//! - a query longer than 1024 bytes gets one error line, then the close;
//! - a client that sends no complete line within `--timeout` seconds
//!   (default 10) is disconnected.
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--users FILE`
//! (lines `login:Full Name:plan`; `#` lines and blank lines are skipped;
//! without it a built-in demo set is served), `--timeout SECS`. SIGINT or
//! SIGTERM stops it (exit 0). Set `GREENIO_LOG=info` to see timeouts.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use greenio::net::{Line, LineReader, Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;

/// The longest query line (RFC 1288 sets no limit; 1 KiB is plenty).
const MAX_QUERY: usize = 1024;
/// After answering, how long we keep reading (and dropping) what the client
/// still sends, so that closing does not reset the connection under the
/// reply before the client has read it.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes dropped that way.
const LINGER_BYTES: u64 = 1024 * 1024;
/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// One user of `--users FILE`.
struct User {
    login: String,
    name: String,
    plan: String,
}

/// A connection: one query, one reply, close.
fn finger(conn: TcpStream, peer: SocketAddr, users: &[User], timeout: Duration) {
    // `greenio::timeout` bounds the whole line, not each read: a client
    // trickling one byte a second is cut off as surely as a silent one.
    let mut lines = LineReader::new(&conn, MAX_QUERY);
    let reply = greenio::timeout(timeout, || {
        lines
            .next_line()
            .map(|line| line.map(|line| reply_to(line, users)))
    });
    let reply = match reply {
        Ok(Ok(Some(reply))) => reply,
        Ok(Ok(None)) => return, // closed without asking anything
        Ok(Err(e)) => {
            log::debug!("{peer}: {e}");
            return;
        }
        Err(_elapsed) => {
            log::info!("{peer}: no query within {timeout:?}, closing");
            return;
        }
    };

    let mut out = Vec::new();
    for line in &reply {
        out.extend(line.bytes().filter(|&b| is_printable(b)));
        out.extend_from_slice(b"\r\n");
    }
    if let Err(e) = (&conn).write_all(&out) {
        log::debug!("{peer}: {e}");
        return;
    }

    // Close our side, then swallow what the client may still send (the
    // rest of an overlong query, say) until it closes too: closing with
    // unread input would send a reset that can destroy the reply.
    let _ = conn.close_lingering(LINGER_BYTES, LINGER);
}

/// The reply lines to one query line (without line ends or filtering).
fn reply_to(line: Line<'_>, users: &[User]) -> Vec<String> {
    let query = match line {
        Line::Complete(query) => String::from_utf8_lossy(query),
        Line::TooLong => return vec![format!("finger: query too long (over {MAX_QUERY} bytes)")],
    };
    let query = query.trim();
    if query.contains('@') {
        return vec!["finger: forwarding service denied".to_string()];
    }
    // RFC 1288: `/W` asks for verbose output, alone or before a login.
    let login = match query
        .strip_prefix("/W")
        .or_else(|| query.strip_prefix("/w"))
    {
        Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => query,
    };

    if login.is_empty() {
        return users
            .iter()
            .map(|u| format!("{:<12} {}", u.login, u.name))
            .collect();
    }
    match users.iter().find(|u| u.login == login) {
        Some(u) => {
            let mut lines = vec![
                format!("Login: {}", u.login),
                format!("Name: {}", u.name),
                "Plan:".to_string(),
            ];
            if !u.plan.is_empty() {
                lines.push(u.plan.clone());
            }
            lines
        }
        None => vec![format!("finger: {login}: no such user.")],
    }
}

/// RFC 1288 3.3: no control characters but tab on the wire (CR and LF
/// only as the line ends we add).
fn is_printable(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("finger", USAGE, Options::parse);
    cli::init_logger();

    let users = match &opts.users {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => match parse_users(&text) {
                Ok(users) => users,
                Err(msg) => {
                    eprintln!("finger: {file}:{msg}");
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("finger: {file}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => demo_users(),
    };
    let users = Arc::new(users);
    let timeout = opts.timeout;

    let result = greenio::run(move || -> io::Result<()> {
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let server = Server::builder()
            .name("finger")
            .bind(opts.listen.as_str(), move |conn, peer| {
                finger(conn, peer, &users, timeout)
            })?;

        // SIGINT/SIGTERM: stop accepting, give open connections GRACE.
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("finger", result)
}

/// `login:Full Name:plan` lines; the plan is the rest of the line.
/// `Err` is `LINE: what is wrong`.
fn parse_users(text: &str) -> Result<Vec<User>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ':');
        match (fields.next(), fields.next(), fields.next()) {
            (Some(login), Some(name), Some(plan)) if !login.trim().is_empty() => users.push(User {
                login: login.trim().to_string(),
                name: name.trim().to_string(),
                plan: plan.trim().to_string(),
            }),
            _ => return Err(format!("{}: expected `login:Full Name:plan`", i + 1)),
        }
    }
    Ok(users)
}

/// Who answers without `--users`.
fn demo_users() -> Vec<User> {
    let user = |login: &str, name: &str, plan: &str| User {
        login: login.to_string(),
        name: name.to_string(),
        plan: plan.to_string(),
    };
    vec![
        user(
            "alice",
            "Alice Liddell",
            "Down the rabbit hole; back by tea time.",
        ),
        user("bob", "Bob Dobbs", "Looking for slack."),
        user("carol", "Carol Shaw", "Writing River Raid II."),
    ]
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: finger [--listen ADDR] [--users FILE] [--timeout SECS]

  --listen ADDR    address to listen on (default 127.0.0.1:7079; port 0 picks a free port;
                   the stock `finger` client needs 127.0.0.1:79, which needs root)
  --users FILE     users to serve, one `login:Full Name:plan` a line
                   (`#` lines and blank lines skipped; default: a built-in demo set)
  --timeout SECS   close clients that send no complete query line in time (default 10)
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (error, warn, info, debug, or
greenio=debug,warn; default warn).";

struct Options {
    listen: String,
    users: Option<String>,
    timeout: Duration,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:7079".to_string(),
            users: None,
            timeout: Duration::from_secs(10),
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("users") => opts.users = Some(args.value()?.string()?),
                Long("timeout") => opts.timeout = cli::seconds("--timeout", args.value()?)?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(opts))
    }
}
