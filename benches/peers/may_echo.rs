//! peer_may_echo: the echo server a may user would write, one stackful
//! coroutine per connection, on a single may worker thread.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_may_echo --listen 127.0.0.1:7000
//! nc 127.0.0.1 7000                    # type a line, get it back
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`), `--buf BYTES` (each
//! connection's buffer, default 4096). Stops with exit status 0 on SIGINT or
//! SIGTERM.
//!
//! may's defaults are kept (32 KiB coroutine stacks, its 10 ms poll timeout)
//! except two: one worker (`set_workers(1)`), and no pinning of workers to
//! cores (`set_worker_pin(false)`), so that `taskset` decides where it runs.
//! Coroutines are spawned through may's `unsafe` `Builder::spawn` rather than
//! its `go!` macro, which hides that call's safety contract.

#[path = "common.rs"]
mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use may::net::{TcpListener, TcpStream};

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_may_echo [--listen ADDR] [--buf BYTES]

A may echo server, one coroutine per connection on one worker thread.
  --listen ADDR   address to listen on (default 127.0.0.1:0)
  --buf BYTES     per-connection buffer (default 4096)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Parses the command line, configures may, and serves from a coroutine.
fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    // Before may starts its threads, so that they inherit the signal mask.
    if let Err(e) = common::on_stop_signal(|| std::process::exit(0)) {
        eprintln!("peer_may_echo: {e}");
        return ExitCode::FAILURE;
    }
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
    let (listen, buf_size) = (args.listen, args.buf);
    let acceptor = spawn(move || serve(listen, buf_size));
    let result = match acceptor {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("acceptor panicked"))),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_may_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Spawns `f` as a may coroutine with may's default stack.
fn spawn<F, T>(f: F) -> io::Result<may::coroutine::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: may requires that a coroutine (1) not use thread-local storage,
    // since it may resume on another worker thread, and (2) stay within its
    // stack. (1): the only coroutines here are the accept loop and `echo`;
    // they touch no thread-local of their own, and with one worker may never
    // moves a coroutine to another thread. (2): both run shallow call chains
    // (socket calls, `eprintln!`) with their buffers on the heap, far inside
    // the default 32 KiB stack.
    unsafe { may::coroutine::Builder::new().spawn(f) }
}

/// Accepts connections and spawns an echo coroutine for each, until a stop
/// signal ends the process.
fn serve(addr: SocketAddr, buf_size: usize) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    common::announce(listener.local_addr()?)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = spawn(move || echo(stream, buf_size)) {
                    eprintln!("peer_may_echo: spawn: {e}");
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                eprintln!("peer_may_echo: accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                may::coroutine::sleep(ACCEPT_BACKOFF);
            }
            // ECONNABORTED and the like concern one connection only.
            Err(_) => {}
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
