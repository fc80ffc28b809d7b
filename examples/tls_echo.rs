//! tls_echo: the echo server over TLS. rustls' `ServerConnection` wrapped
//! in a `StreamOwned` over a greenio `TcpStream`, one green thread per
//! connection: rustls only needs `Read + Write`, and greenio's sockets are
//! exactly that, so the TLS code below is the same as it would be on
//! `std::net` with a thread per connection.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example tls_echo                     # listening on 127.0.0.1:7443
//! openssl s_client -connect 127.0.0.1:7443 -quiet  # type a line, it comes back
//! ```
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--cert FILE` and
//! `--key FILE` (PEM: the certificate chain, and a PKCS#8, PKCS#1 or SEC1
//! private key). Without them it generates a self-signed certificate for
//! `localhost` and `127.0.0.1` at start (clients must then skip
//! verification, as `openssl s_client` does by default). SIGINT or SIGTERM
//! stops it (exit 0). A failed handshake, a plain-text client or a reset
//! closes that connection with a log line on stderr; the server goes on.
//!
//! Limit: a `StreamOwned` is one object that both reads and writes, so one
//! green thread drives each connection (request/response protocols need no
//! more). A protocol where one green thread reads while another writes the
//! same TLS stream (a chat) cannot split it with `try_clone` as it would a
//! plain `TcpStream`. That needs a wrapper that shares the rustls
//! connection under a lock, waits for input with `TcpStream::peek` without
//! holding it, and writes TLS records under a second lock so a writer
//! parked on a full socket never blocks the reader. greenio does not ship
//! one: it would make rustls a dependency of `greenio::net`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use greenio::net::{Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

#[path = "support/cli.rs"]
mod cli;

/// How long a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

/// One connection: handshake, then echo plaintext until the client closes.
fn serve_tls(config: &Arc<ServerConfig>, conn: TcpStream, peer: SocketAddr) {
    let _ = conn.set_nodelay(true);
    let tls = match ServerConnection::new(config.clone()) {
        Ok(tls) => tls,
        Err(e) => return log::error!("{peer}: cannot start a TLS session: {e}"),
    };
    let mut stream = StreamOwned::new(tls, conn);

    // 1. handshake, bounded so a silent client does not keep its slot
    let _ = stream.sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            return log::warn!("{peer}: TLS handshake failed: {e}");
        }
    }
    let _ = stream.sock.set_read_timeout(None);
    log::info!(
        "{peer}: TLS session up ({:?})",
        stream.conn.protocol_version()
    );

    // 2. echo: plain blocking reads and writes through the TLS stream
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break, // close_notify from the client
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return log::info!("{peer}: closed without close_notify");
            }
            Err(e) => return log::warn!("{peer}: {e}"),
        };
        if let Err(e) = stream.write_all(&buf[..n]).and_then(|()| stream.flush()) {
            return log::warn!("{peer}: {e}");
        }
    }

    // 3. answer the client's close_notify with ours
    stream.conn.send_close_notify();
    let _ = stream.flush();
    log::info!("{peer}: closed");
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("tls_echo", USAGE, Options::parse);
    cli::init_logger();

    let config = match server_config(&opts) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("tls_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = greenio::run(move || -> io::Result<()> {
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let server = Server::builder()
            .name("tls_echo")
            .bind(opts.listen.as_str(), move |conn, peer| {
                serve_tls(&config, conn, peer)
            })?;
        server.handle().stop_on(signals, GRACE);

        println!("listening on {}", server.local_addr()?);
        io::stdout().flush()?;
        server.serve()
    });
    cli::exit_status("tls_echo", result)
}

/// The rustls configuration: the given certificate and key, or a
/// self-signed pair generated now.
fn server_config(opts: &Options) -> io::Result<ServerConfig> {
    let (certs, key) = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| io::Error::other(format!("--cert {cert}: {e}")))?;
            if certs.is_empty() {
                return Err(io::Error::other(format!("--cert {cert}: no certificate")));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| io::Error::other(format!("--key {key}: {e}")))?;
            (certs, key)
        }
        (None, None) => {
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|e| io::Error::other(format!("generating a certificate: {e}")))?;
            log::warn!("no --cert/--key: using a self-signed certificate for localhost");
            let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
            (vec![generated.cert.der().clone()], key.into())
        }
        _ => return Err(io::Error::other("--cert and --key go together")),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| io::Error::other(format!("certificate and key: {e}")))
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: tls_echo [--listen ADDR] [--cert FILE --key FILE]

  --listen ADDR    address to listen on (default 127.0.0.1:7443; port 0 picks a free port)
  --cert FILE      PEM certificate chain (default: a self-signed one, generated now)
  --key FILE       PEM private key for --cert
  -h, --help       this text

Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Try it: openssl s_client -connect 127.0.0.1:7443 -quiet
Log filter from GREENIO_LOG or RUST_LOG (default warn).";

struct Options {
    listen: String,
    cert: Option<String>,
    key: Option<String>,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:7443".to_string(),
            cert: None,
            key: None,
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("cert") => opts.cert = Some(args.value()?.string()?),
                Long("key") => opts.key = Some(args.value()?.string()?),
                _ => return Err(arg.unexpected()),
            }
        }
        if opts.cert.is_some() != opts.key.is_some() {
            return Err("--cert and --key go together".into());
        }
        Ok(Some(opts))
    }
}
