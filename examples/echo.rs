//! echo: every byte a client sends comes back, one green thread per
//! connection, written as plain blocking code on `greenio::net::Server`.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --release --example echo                  # listening on 127.0.0.1:7000
//! nc 127.0.0.1 7000                                    # type a line, it comes back
//! target/release/examples/echo_client --addr 127.0.0.1:7000 -c 100 -b 64 --secs 5
//! ```
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--hubs N` (OS
//! threads serving connections), `--max-conns N` (connections served at
//! once; more wait in the kernel's backlog), `--reuse-port` (one listener
//! per hub instead of one acceptor dealing connections). Ctrl-C (SIGINT) or
//! SIGTERM stops it: it stops accepting, gives open connections a second to
//! finish, closes the rest and exits 0. Set `GREENIO_LOG=debug` for more
//! log lines on stderr.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use greenio::net::{Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};

#[path = "support/cli.rs"]
mod cli;

/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// Bytes read per `read` call, into a buffer on the green thread's stack.
///
/// This size sets what an idle connection costs. Measured with 2,000 idle
/// connections (release build), the process grows per connection by:
/// 4.5 KiB with a 1 KiB buffer, 8.5 KiB with 4 KiB, 20.5 KiB with 16 KiB; a
/// heap `Vec` costs the same as a stack buffer of its size (8.6 KiB for
/// 4 KiB, 20.0 KiB for 16 KiB): the buffer's pages stay resident either
/// way. 4 KiB keeps an idle connection within a 12 KiB budget and still
/// moves a large transfer in page-sized reads.
const BUF_SIZE: usize = 4096;

/// The whole protocol: read what arrived, write it back, until EOF or error.
fn echo(mut conn: TcpStream, _peer: SocketAddr) {
    // Echo replies go out at once: without this, Nagle's algorithm holds a
    // short tail segment until the client's delayed ACK (40 ms) arrives.
    let _ = conn.set_nodelay(true);
    let mut buf = [0u8; BUF_SIZE];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return, // EOF, reset...: the connection is over
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("echo", USAGE, Options::parse);
    cli::init_logger();

    let runtime = match greenio::Runtime::builder().hubs(opts.hubs).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.run(move || -> std::io::Result<()> {
        // Listen for the stop signals before anything else, so that a
        // SIGTERM arriving at any point from here on stops us cleanly.
        let signals = Signals::new(&[SIGINT, SIGTERM])?;

        let mut builder = Server::builder().name("echo").reuse_port(opts.reuse_port);
        if let Some(n) = opts.max_conns {
            builder = builder.max_connections(n);
        }
        let server = builder.bind(opts.listen.as_str(), echo)?;

        // SIGINT/SIGTERM: stop accepting, give open connections GRACE.
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        std::io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("echo", result)
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: echo [--listen ADDR] [--hubs N] [--max-conns N] [--reuse-port]

  --listen ADDR    address to listen on (default 127.0.0.1:7000; port 0 picks a free port)
  --hubs N         OS threads serving connections (default 1)
  --max-conns N    connections served at once (default: no limit)
  --reuse-port     one SO_REUSEPORT listener per hub instead of one acceptor
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (error, warn, info, debug, or
greenio=debug,warn; default warn).";

struct Options {
    listen: String,
    hubs: usize,
    max_conns: Option<usize>,
    reuse_port: bool,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:7000".to_string(),
            hubs: 1,
            max_conns: None,
            reuse_port: false,
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("hubs") => opts.hubs = cli::positive("--hubs", args.value()?)?,
                Long("max-conns") => {
                    opts.max_conns = Some(cli::positive("--max-conns", args.value()?)?)
                }
                Long("reuse-port") => opts.reuse_port = true,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(opts))
    }
}
