//! The command-line chores every example shares, none of them greenio's:
//! arguments through [`lexopt`], `--help`, exit status 2 for a bad command
//! line, and a logger through [`env_logger`]. An example includes it with
//! `#[path = "support/cli.rs"] mod cli;` and keeps only its own options.
//!
//! ```text
//! let opts = cli::parse_or_exit("echo", USAGE, Options::parse);
//! cli::init_logger();
//! ```
#![allow(dead_code)] // every example uses a different subset

use std::ffi::OsString;
use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

/// Runs `parse` (an example's own loop over [`lexopt::Parser::next`]) on
/// this process's arguments and returns what it built.
///
/// `parse` returns `Ok(None)` for `-h`/`--help`: `usage` goes to stdout and
/// the process exits 0. A mistake goes to stderr as `NAME: what is wrong`,
/// followed by `usage`, and the process exits 2.
pub fn parse_or_exit<T>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(&mut lexopt::Parser) -> Result<Option<T>, lexopt::Error>,
) -> T {
    match parse(&mut lexopt::Parser::from_env()) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{usage}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{name}: {e}\n\n{usage}");
            std::process::exit(2)
        }
    }
}

/// The exit status of a run: 0, or 1 after printing `NAME: error` to
/// stderr.
pub fn exit_status<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `log` records to stderr through `env_logger`, filtered by
/// `GREENIO_LOG`, or else by the standard `RUST_LOG`, or else at `warn`.
/// Both take `env_logger`'s syntax: a level (`error`, `warn`, `info`,
/// `debug`, `trace`, `off`) or per-target levels (`greenio=debug,warn`).
pub fn init_logger() {
    let filter = std::env::var("GREENIO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    env_logger::Builder::new().parse_filters(&filter).init();
}

/// The parser of a server whose only option is `--listen ADDR`, with
/// `default` when it is not given.
pub fn listen_only(
    default: &str,
) -> impl FnOnce(&mut lexopt::Parser) -> Result<Option<String>, lexopt::Error> + '_ {
    move |args| {
        use lexopt::prelude::*;
        let mut listen = default.to_string();
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => listen = args.value()?.string()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(listen))
    }
}

/// The value of option `name` as a whole number above zero.
pub fn positive(name: &str, value: OsString) -> Result<usize, lexopt::Error> {
    match value.to_str().map(str::parse::<usize>) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(format!("{name}: expected a positive number, got {value:?}").into()),
    }
}

/// The value of option `name` as a positive number of seconds (fractions
/// allowed, below 10^9).
pub fn seconds(name: &str, value: OsString) -> Result<Duration, lexopt::Error> {
    match value.to_str().map(str::parse::<f64>) {
        Some(Ok(s)) if s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{name}: expected a positive number of seconds, got {value:?}").into()),
    }
}
