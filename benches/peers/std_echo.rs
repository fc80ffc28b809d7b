//! peer_std_echo: a thread-per-connection echo server on `std::net`, the
//! model green threads imitate, with one OS thread (64 KiB stack) for each
//! connection and blocking reads and writes.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_std_echo --listen 127.0.0.1:7000
//! nc 127.0.0.1 7000                    # type a line, get it back
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`), `--buf BYTES` (each
//! connection's buffer, default 4096). Stops with exit status 0 on SIGINT or
//! SIGTERM. Holding 10,000 connections needs `ulimit -n` above 10,000 and as
//! many threads (`/proc/sys/kernel/threads-max`, `vm.max_map_count`).

#[path = "common.rs"]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_std_echo [--listen ADDR] [--buf BYTES]

A thread-per-connection echo server on std::net.
  --listen ADDR   address to listen on (default 127.0.0.1:0)
  --buf BYTES     per-connection buffer (default 4096)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// Stack size of each connection's thread.
const STACK_SIZE: usize = 64 * 1024;
/// How long accepting pauses after running out of file descriptors or threads.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Parses the command line, then accepts connections, one thread each, until a
/// stop signal ends the process.
fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    if let Err(e) = common::on_stop_signal(|| std::process::exit(0)) {
        eprintln!("peer_std_echo: {e}");
        return ExitCode::FAILURE;
    }
    let listener = match TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("peer_std_echo: bind {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = listener.local_addr().and_then(common::announce) {
        eprintln!("peer_std_echo: {e}");
        return ExitCode::FAILURE;
    }
    let buf_size = args.buf;
    // Runs until a stop signal ends the process.
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                eprintln!("peer_std_echo: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            // ECONNABORTED and the like concern one connection only.
            Err(_) => continue,
        };
        let spawned = std::thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || echo(stream, buf_size));
        if let Err(e) = spawned {
            // The connection closes as the closure holding it is dropped.
            eprintln!("peer_std_echo: spawn: {e}; pausing {ACCEPT_BACKOFF:?}");
            std::thread::sleep(ACCEPT_BACKOFF);
        }
    }
}

/// Echoes one connection until end of stream or an error.
fn echo(mut stream: TcpStream, buf_size: usize) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0; buf_size];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
