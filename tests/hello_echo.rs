//! The first example, `hello_echo` (the README's "A taste"), as a user runs
//! it: the shared echo protocol bodies against the built binary, then its
//! command line.
//!
//! Build the examples first when running this file alone:
//! `cargo build --examples && cargo test --test hello_echo`.

#[path = "util/echo_protocol.rs"]
mod echo_protocol;
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::{run_example, Example};

/// Every echo protocol rule holds for the plain listener-and-spawn loop.
#[test]
fn hello_echo_passes_the_echo_protocol() {
    let server = Example::start_any_port("hello_echo");
    for (test, body) in echo_protocol::ALL {
        eprintln!("hello_echo: {test}");
        body(server.addr);
    }
}

/// A client that connected first and sends nothing does not hold up the
/// next one: each connection has its own green thread.
#[test]
fn a_silent_client_does_not_block_the_next() {
    let server = Example::start_any_port("hello_echo");
    let _silent = TcpStream::connect(server.addr).unwrap();
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"second").unwrap();
    let mut back = [0u8; 6];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"second");
}

#[test]
fn help_shows_the_default_address_and_bad_arguments_exit_2() {
    let (st, out, _) = run_example("hello_echo", &["--help"]);
    assert!(st.success(), "{st:?}");
    assert!(out.contains("--listen"), "{out}");
    assert!(out.contains("127.0.0.1:7000"), "the default address: {out}");
    let (st, _, err) = run_example("hello_echo", &["--bogus"]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("--bogus"),
        "the error names the argument: {err}"
    );
    let (st, _, err) = run_example("hello_echo", &["--listen"]);
    assert_eq!(st.code(), Some(2), "a missing value: {err}");
}

#[test]
fn an_address_in_use_is_an_error_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (st, out, err) = run_example("hello_echo", &["--listen", &addr]);
    assert_eq!(st.code(), Some(1), "{out}{err}");
    assert!(out.is_empty(), "no `listening on` line: {out}");
}
