//! Plumbing shared by the peer echo servers in `benches/peers/`: their
//! command line, the `listening on IP:PORT` line, and stopping on a signal.
//!
//! Each peer is its own example target (see the root `Cargo.toml`) and pulls
//! this file in with `#[path = "common.rs"] mod common;`, so the servers stay
//! free of one another and of greenio.
//!
//! Every peer follows DESIGN.md's rules for example servers: `--listen ADDR`
//! (default `127.0.0.1:0`, port 0 picks a free port), exactly one line
//! `listening on IP:PORT` on stdout, flushed, once the socket accepts, and exit
//! status 0 on SIGINT or SIGTERM.
//!
//! Signals: [`on_stop_signal`] blocks SIGINT and SIGTERM in the calling thread
//! (so in every thread spawned after it, which inherit the mask) and starts one
//! thread that takes them with `sigwait(3)`. No handler runs in signal context,
//! no system call of the serving threads is interrupted (no `EINTR` for them
//! to handle), and the serving code needs no flag to check.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Default size of each connection's read buffer, in bytes.
pub const DEFAULT_BUF: usize = 4096;

/// Options every peer takes.
#[derive(Debug)]
pub struct Args {
    /// Address to listen on (`--listen`).
    pub listen: SocketAddr,
    /// Size of each connection's read buffer in bytes (`--buf`).
    pub buf: usize,
    /// Runtime flavour (`--flavor`), for peers that have more than one.
    #[allow(dead_code)] // read only by the peers that have flavours
    pub flavor: Option<String>,
}

/// Parses the command line: `--listen ADDR`, `--buf BYTES`, and, when
/// `flavors` is not empty, `--flavor NAME` with NAME one of `flavors` (the
/// first is the default).
///
/// `--help` prints `usage` and exits 0.
///
/// # Errors
///
/// Returns a message naming the bad argument; the caller prints it with the
/// usage and exits with status 2.
pub fn parse_args(usage: &str, flavors: &[&str]) -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        buf: DEFAULT_BUF,
        flavor: flavors.first().map(|f| (*f).to_owned()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: {e} (want IP:PORT)"))?;
            }
            "--buf" => {
                let v = value("--buf")?;
                args.buf = match v.parse::<usize>() {
                    Ok(n) if (1..=1 << 24).contains(&n) => n,
                    _ => return Err(format!("--buf {v}: want 1..=16777216 bytes")),
                };
            }
            "--flavor" if !flavors.is_empty() => {
                let v = value("--flavor")?;
                if !flavors.contains(&v.as_str()) {
                    return Err(format!("--flavor {v}: want one of {}", flavors.join(", ")));
                }
                args.flavor = Some(v);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Prints a command-line error with the usage and returns exit status 2.
pub fn usage_error(message: &str, usage: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{usage}");
    ExitCode::from(2)
}

/// Prints the one line `listening on IP:PORT` to stdout and flushes it, for a
/// harness that waits for the server to be ready.
///
/// # Errors
///
/// Fails if stdout cannot be written (for example a closed pipe).
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

/// Restores the default action of SIGINT and SIGTERM (a shell starts
/// background jobs with SIGINT ignored), blocks both in the calling thread,
/// and starts a thread that waits for either and then runs `on_stop` (for
/// example `std::process::exit(0)`, or waking an event loop that returns).
///
/// Call it first in `main`, before any other thread exists: threads inherit
/// the signal mask, and a thread started earlier would still take the signal
/// with its default action.
///
/// # Errors
///
/// Fails if the signal mask cannot be set or the thread cannot be started.
pub fn on_stop_signal(on_stop: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let set = stop_signals();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // A shell starts background jobs with SIGINT ignored, and an ignored
        // signal is discarded before sigwait can take it: restore the default.
        // SAFETY: SIG_DFL is a valid disposition for these signals, and the
        // signals are blocked below before any thread could take one.
        if unsafe { libc::signal(signal, libc::SIG_DFL) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `set` is an initialised signal set that outlives the call, and
    // a null old-mask pointer is allowed by pthread_sigmask(3).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    std::thread::Builder::new()
        .name("stop-signal".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut signal: libc::c_int = 0;
            loop {
                // SAFETY: `set` and `signal` are valid for the call; the set
                // holds only signals this process has blocked in every thread.
                let rc = unsafe { libc::sigwait(&set, &mut signal) };
                if rc == 0 {
                    break;
                }
            }
            on_stop();
        })?;
    Ok(())
}

/// The signal set {SIGINT, SIGTERM}.
fn stop_signals() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset is then
    // called on that initialised set with valid signal numbers, so neither can
    // fail and `assume_init` reads an initialised value.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        set.assume_init()
    }
}
