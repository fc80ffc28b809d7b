//! The command line both HTTP server twins share (`examples/http.rs`,
//! `examples/http_callback.rs`), on the chores of `support/cli.rs`.
//! Include both: `#[path = "support/cli.rs"] mod cli;` and
//! `#[path = "support/http_cli.rs"] mod http_cli;`.

use std::time::Duration;

use crate::cli;

/// The options of an HTTP server twin.
pub struct Options {
    /// `--listen ADDR` (default 127.0.0.1:8080).
    pub listen: String,
    /// `--hubs N` (default 1).
    pub hubs: usize,
    /// `--timeout SECS`: for a request to arrive whole, and for an idle
    /// keep-alive connection (default 10 s).
    pub timeout: Duration,
    /// `--max-conns N` (default: no limit).
    pub max_conns: Option<usize>,
}

/// The usage text of server `name`; `max_conns` says what happens past
/// `--max-conns`.
pub fn usage(name: &str, max_conns: &str) -> String {
    format!(
        "\
usage: {name} [--listen ADDR] [--hubs N] [--timeout SECS] [--max-conns N]

  --listen ADDR     address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  --hubs N          OS threads serving connections (default 1)
  --timeout SECS    for a request to arrive, and for an idle keep-alive connection (default 10)
  --max-conns N     {max_conns} (default: no limit)
  -h, --help        this text

Routes: GET|HEAD /plaintext, GET|HEAD /json, POST /echo; 404 otherwise.
Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log level from GREENIO_LOG or RUST_LOG (error, warn, info, debug; default warn)."
    )
}

/// Parses the command line of server `name` (see [`cli::parse_or_exit`]:
/// `--help` exits 0, a mistake exits 2).
pub fn parse_or_exit(name: &str, usage: &str) -> Options {
    cli::parse_or_exit(name, usage, |args| {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:8080".to_string(),
            hubs: 1,
            timeout: Duration::from_secs(10),
            max_conns: None,
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("hubs") => opts.hubs = cli::positive("--hubs", args.value()?)?,
                Long("timeout") => opts.timeout = cli::seconds("--timeout", args.value()?)?,
                Long("max-conns") => {
                    opts.max_conns = Some(cli::positive("--max-conns", args.value()?)?)
                }
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(opts))
    })
}
