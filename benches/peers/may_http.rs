//! peer_may_http: the HTTP/1.1 server a may user would write, on
//! may_minihttp (one coroutine per connection) with one may worker thread,
//! with the routes of `examples/http.rs` (issue 12).
//!
//! Run it and poke it:
//!
//! ```text
//! cargo build --release --examples
//! taskset -c 0 target/release/examples/peer_may_http --listen 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/plaintext
//! ```
//!
//! Options: `--listen ADDR` (default `127.0.0.1:0`). Stops with exit status
//! 0 on SIGINT or SIGTERM.
//!
//! may's defaults are kept except one worker (`set_workers(1)`) and no
//! pinning (`set_worker_pin(false)`), so that `taskset` decides where it
//! runs, as for `peer_may_echo`. may_minihttp's `start` binds the address
//! itself and does not say which port it got, so for port 0 this peer first
//! finds a free port with a throwaway listener (a race no benchmark on an
//! otherwise idle loopback loses). may_minihttp writes `Server` and `Date`
//! itself; it spawns coroutines with may's `go!`.

#[path = "common.rs"]
mod common;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use may_minihttp::{HttpServer, HttpService, Request, Response};

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: peer_may_http [--listen ADDR]

A may_minihttp HTTP/1.1 server on one may worker thread:
GET|HEAD /plaintext and /json, POST /echo, 404 otherwise.
  --listen ADDR   address to listen on (default 127.0.0.1:0)
Prints `listening on IP:PORT` once ready; exits 0 on SIGINT/SIGTERM.";

/// Largest body `/echo` takes.
const MAX_BODY: u64 = 1 << 20;

/// The routes.
#[derive(Clone)]
struct Routes;

impl HttpService for Routes {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/plaintext") => {
                rsp.header("Content-Type: text/plain");
                rsp.body("Hello, World!");
            }
            ("GET" | "HEAD", "/json") => {
                rsp.header("Content-Type: application/json");
                rsp.body(r#"{"message":"Hello, World!"}"#);
            }
            ("POST", "/echo") => {
                let mut body = Vec::new();
                req.body().take(MAX_BODY).read_to_end(&mut body)?;
                rsp.header("Content-Type: application/octet-stream");
                rsp.body_vec(body);
            }
            _ => {
                rsp.status_code(404, "Not Found");
                rsp.header("Content-Type: text/plain");
                rsp.body("Not Found");
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = match common::parse_args(USAGE, &[]) {
        Ok(args) => args,
        Err(message) => return common::usage_error(&message, USAGE),
    };
    // Before may starts its threads, so that they inherit the signal mask.
    if let Err(e) = common::on_stop_signal(|| std::process::exit(0)) {
        eprintln!("peer_may_http: {e}");
        return ExitCode::FAILURE;
    }
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
    let addr = match resolve_port(args.listen) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("peer_may_http: {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let server = match HttpServer(Routes).start(addr) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("peer_may_http: {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = common::announce(addr) {
        eprintln!("peer_may_http: {e}");
        return ExitCode::FAILURE;
    }
    server.wait();
    ExitCode::SUCCESS
}

/// `addr` with port 0 replaced by a port that is free now.
fn resolve_port(addr: SocketAddr) -> io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    TcpListener::bind(addr)?.local_addr()
}
