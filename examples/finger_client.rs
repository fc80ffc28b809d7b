//! finger_client: the seeds' finger client (an asyncore dispatcher with four
//! callbacks there) as straight-line green-thread code: connect, send the
//! query, read until the server closes, print.
//!
//! Run it against the finger example:
//!
//! ```text
//! cargo run --example finger &                              # listening on 127.0.0.1:7079
//! cargo run --example finger_client -- @127.0.0.1:7079      # list the users
//! cargo run --example finger_client -- alice@127.0.0.1:7079
//! cargo run --example finger_client -- -l alice@127.0.0.1:7079   # sends `/W alice`
//! ```
//!
//! `finger_client [-l] [user]@host[:port]`: the port defaults to 79, the
//! finger port; `host` may be a name, an IPv4 address or `[IPv6]`. With
//! `-l` the query asks for verbose output (`/W user`). The answer's CRLF
//! line ends print as LF and control characters are dropped (RFC 1288 3.3:
//! a client must not pass them to the terminal). Exit 0 when the answer was
//! read to the end; 1 with a message on stderr when connecting, sending or
//! reading fails (or takes more than `--timeout` seconds, default 10); 2 for
//! a bad command line.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use greenio::net::TcpStream;

#[path = "support/cli.rs"]
mod cli;

/// The whole exchange: connect, send `query`, read to the end.
fn finger(host: &str, port: u16, query: &str) -> io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect((host, port))?;
    conn.write_all(query.as_bytes())?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)?;
    Ok(answer)
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("finger_client", USAGE, Options::parse);
    cli::init_logger();
    let query = if opts.long {
        format!("/W {}\r\n", opts.user)
    } else {
        format!("{}\r\n", opts.user)
    };

    let answer = greenio::run(|| {
        // One deadline for the whole exchange, wherever it is parked.
        greenio::timeout(opts.timeout, || finger(&opts.host, opts.port, &query))
            .unwrap_or_else(|elapsed| Err(elapsed.into()))
    });
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("finger_client: {}:{}: {e}", opts.host, opts.port);
            return ExitCode::FAILURE;
        }
    };

    let mut shown = Vec::with_capacity(answer.len());
    for (i, &b) in answer.iter().enumerate() {
        let crlf = b == b'\r' && answer.get(i + 1) == Some(&b'\n');
        if b == b'\n' || b == b'\t' || (b >= 0x20 && b != 0x7f && !crlf) {
            shown.push(b);
        }
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_all(&shown).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("finger_client: stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: finger_client [-l] [--timeout SECS] [user]@host[:port]

  -l               ask for verbose output (sends `/W user`)
  --timeout SECS   give up after this long (default 10)
  -h, --help       this text

The port defaults to 79. An empty user lists the users (`@host`); a user
with its own `@` (user@relay@host) asks the server to forward the query.
Log filter from GREENIO_LOG or RUST_LOG (default warn).";

struct Options {
    long: bool,
    timeout: Duration,
    user: String,
    host: String,
    port: u16,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut long = false;
        let mut timeout = Duration::from_secs(10);
        let mut target = None;
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Short('l') => long = true,
                Long("timeout") => timeout = cli::seconds("--timeout", args.value()?)?,
                Value(v) if target.is_none() => target = Some(v.string()?),
                _ => return Err(arg.unexpected()),
            }
        }
        let target = target.ok_or("missing [user]@host[:port]")?;
        let (user, host_port) = target
            .rsplit_once('@')
            .ok_or_else(|| format!("{target:?}: expected [user]@host[:port]"))?;
        let (host, port) = split_host_port(host_port)
            .ok_or_else(|| format!("{host_port:?}: expected host[:port]"))?;
        Ok(Some(Options {
            long,
            timeout,
            user: user.to_string(),
            host,
            port,
        }))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; the
/// port defaults to 79.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            _ => (s, None), // no colon, or a bare IPv6 address
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 79,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}
