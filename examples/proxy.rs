//! proxy: a TCP forwarder (the seeds' "service proxies"), two green threads
//! per connection, each a plain copy loop: client to upstream, upstream to
//! client.
//!
//! Run it in front of the echo example and poke it:
//!
//! ```text
//! cargo run --example echo &                                # listening on 127.0.0.1:7000
//! cargo run --example proxy -- --to 127.0.0.1:7000          # listening on 127.0.0.1:7002
//! nc 127.0.0.1 7002                                         # type a line, it comes back
//! ```
//!
//! - Bytes go both ways unchanged, as they arrive.
//! - A half-close is passed on: when one side shuts down its sending half
//!   (EOF), the proxy shuts down its sending half towards the other side,
//!   and keeps copying the other way until that side closes too.
//! - An upstream that cannot be reached (refused, or no answer within 5
//!   seconds) closes the client at once, with a log line on stderr. A reset
//!   on either side ends both directions.
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--to ADDR` (the
//! upstream, a name or an address, resolved once at start). SIGINT/SIGTERM
//! stop it (exit 0). `GREENIO_LOG=info` logs every connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use greenio::net::{Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;

/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per read, on the copying green thread's stack.
const BUF_SIZE: usize = 16 * 1024;
/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// One client connection: connect upstream, then copy both ways.
fn proxy(client: TcpStream, peer: SocketAddr, upstream_addrs: &[SocketAddr]) {
    let connect = greenio::timeout(CONNECT_TIMEOUT, || TcpStream::connect(upstream_addrs));
    let upstream = match connect.unwrap_or_else(|elapsed| Err(elapsed.into())) {
        Ok(upstream) => upstream,
        Err(e) => {
            log::warn!(
                "{peer}: cannot reach upstream {}: {e}; closing the client",
                upstream_addrs[0]
            );
            return; // dropping `client` closes it
        }
    };
    let to = upstream.peer_addr().unwrap_or(upstream_addrs[0]);
    log::info!("{peer}: connected to {to}");

    // Both green threads run on this hub, so they can share the sockets.
    let client = Rc::new(client);
    let upstream = Rc::new(upstream);
    let down = {
        let (client, upstream) = (client.clone(), upstream.clone());
        greenio::spawn(move || pipe(&upstream, &client))
    };
    let up = pipe(&client, &upstream);
    let down = down.join().unwrap_or_else(|e| Err(e.into()));
    match (up, down) {
        (Ok(up), Ok(down)) => log::info!("{peer}: done, {up} bytes up, {down} bytes down"),
        (Err(e), _) | (_, Err(e)) => log::info!("{peer}: connection to {to} broken: {e}"),
    }
}

/// Copies everything `from` sends to `to`; when `from` has sent all (EOF),
/// shuts down `to`'s sending half, passing the half-close on. After an
/// error both sockets are shut down, which ends the other direction too.
fn pipe(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; BUF_SIZE];
    let mut copied = 0;
    let result = loop {
        match from.read(&mut buf) {
            Ok(0) => break to.shutdown(Shutdown::Write).or_else(already_closed),
            Ok(n) => match to.write_all(&buf[..n]) {
                Ok(()) => copied += n as u64,
                Err(e) => break Err(e),
            },
            Err(e) => break Err(e),
        }
    };
    if result.is_err() {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
    result.map(|()| copied)
}

/// Shutting down a socket the peer has already reset is not an error.
fn already_closed(e: io::Error) -> io::Result<()> {
    match e.kind() {
        io::ErrorKind::NotConnected => Ok(()),
        _ => Err(e),
    }
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("proxy", USAGE, Options::parse);
    cli::init_logger();

    let result = greenio::run(move || -> io::Result<()> {
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let upstream: Arc<[SocketAddr]> = greenio::net::lookup_host(&opts.to)
            .map_err(|e| io::Error::new(e.kind(), format!("--to {}: {e}", opts.to)))?
            .into();
        if upstream.is_empty() {
            return Err(io::Error::other(format!("--to {}: no address", opts.to)));
        }
        let server = Server::builder()
            .name("proxy")
            .bind(opts.listen.as_str(), move |conn, peer| {
                proxy(conn, peer, &upstream)
            })?;

        // SIGINT/SIGTERM: stop accepting, give open connections GRACE.
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("proxy", result)
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: proxy [--listen ADDR] [--to ADDR]

  --listen ADDR    address to listen on (default 127.0.0.1:7002; port 0 picks a free port)
  --to ADDR        upstream to forward to, host:port (default 127.0.0.1:7000, the echo example)
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (error, warn, info, debug, or
greenio=debug,warn; default warn).";

struct Options {
    listen: String,
    to: String,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:7002".to_string(),
            to: "127.0.0.1:7000".to_string(),
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("to") => opts.to = args.value()?.string()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(opts))
    }
}
