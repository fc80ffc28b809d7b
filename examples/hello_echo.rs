//! hello_echo: the first step, the README's "A taste" as a program. A
//! listener, and one green thread per connection that reads and writes as
//! if the socket were blocking; each call parks only its own green thread,
//! so every connection is served at once on one OS thread.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example hello_echo                  # listening on 127.0.0.1:7000
//! nc 127.0.0.1 7000                                # type a line, it comes back
//! ```
//!
//! `--listen ADDR` picks the address (port 0 picks a free port). Ctrl-C
//! ends it the way it ends any program. The next step, `examples/echo.rs`,
//! is the same echo on `net::Server`: a connection limit, an accept loop
//! that rides out running out of descriptors, several hubs, and a graceful
//! stop on SIGINT/SIGTERM.

use std::io::{Read, Write};

use greenio::net::TcpListener;

#[path = "support/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: hello_echo [--listen ADDR]

  --listen ADDR    address to listen on (default 127.0.0.1:7000; port 0 picks a free port)
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; Ctrl-C ends it.";

fn main() -> std::io::Result<()> {
    let listen = cli::parse_or_exit("hello_echo", USAGE, cli::listen_only("127.0.0.1:7000"));
    cli::init_logger();

    greenio::run(move || {
        let listener = TcpListener::bind(listen.as_str())?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (mut conn, _peer) = listener.accept()?; // parks; other green threads run
            greenio::spawn(move || {
                let mut buf = [0u8; 4096];
                // `read` parks until bytes arrive; 0 (the client closed) or
                // an error ends the loop, and dropping `conn` closes it.
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    })
}
