//! echo_callback: the echo server in the callback style (asyncore's
//! dispatcher), on the same hub loop as green threads. The twin of
//! `examples/echo.rs`; compare the two.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --release --example echo_callback         # listening on 127.0.0.1:7000
//! nc 127.0.0.1 7000                                    # type a line, it comes back
//! target/release/examples/echo_client --addr 127.0.0.1:7000 -c 100 -b 64 --secs 5
//! ```
//!
//! Options: `--listen ADDR` (port 0 picks a free port). Ctrl-C (SIGINT) or
//! SIGTERM stops it: it stops accepting, gives open connections a second to
//! finish, closes the rest and exits 0. Set `GREENIO_LOG=debug` for more
//! log lines on stderr.
//!
//! Where `echo.rs` writes one loop per connection (`read`, `write_all`,
//! repeat) and lets the green thread's stack remember where it was, a
//! callback handler is called each time the socket is readable and must
//! leave its state in a struct between calls. For echo the state is only
//! the buffer, so the two are about the same length; the chat twins show
//! the difference once a protocol has state.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use greenio::net::reactor::{self, Context, Handler};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;

/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// Bytes read per `recv` call, held by each connection (like the
/// hand-written mio server's per-connection buffer).
const BUF_SIZE: usize = 4096;

/// The whole protocol: whenever the socket is readable, read what arrived
/// and queue it back. The reactor sends it (at once, when the socket takes
/// it), closes after EOF once everything is sent, and pauses reading while
/// more than 64 KiB wait to be sent to a client that does not read.
struct Echo {
    buf: [u8; BUF_SIZE],
}

impl Handler for Echo {
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        // Read until recv says WouldBlock (an Err): events are edges.
        while let Ok(n) = cx.recv(&mut self.buf) {
            if n == 0 {
                return; // EOF
            }
            if cx.push(&self.buf[..n]).is_err() {
                return; // closed: the push failed, handle_error has the reason
            }
        }
    }
}

fn main() -> ExitCode {
    let listen = cli::parse_or_exit("echo_callback", USAGE, cli::listen_only("127.0.0.1:7000"));
    cli::init_logger();
    // Resolve before the hub starts: a reactor call never blocks.
    let addr = match resolve(&listen) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("echo_callback: {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };

    let result = greenio::run(move || -> io::Result<()> {
        // Listen for the stop signals first, so that a SIGTERM arriving from
        // here on stops us cleanly.
        let mut signals = Signals::new(&[SIGINT, SIGTERM])?;
        let listener = reactor::listen(addr, |_peer| Echo { buf: [0; BUF_SIZE] })?;
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;

        // The reactor serves from the hub's loop while this green thread
        // waits for a signal.
        let sig = signals.recv()?;
        eprintln!("echo_callback: signal {sig}, stopping");
        listener.shutdown(GRACE);
        Ok(())
    });
    cli::exit_status("echo_callback", result)
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: echo_callback [--listen ADDR]

  --listen ADDR    address to listen on (default 127.0.0.1:7000; port 0 picks a free port)
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
