//! Counts the syscalls a greenio echo server makes per message.
//!
//! The hub (the main thread) echoes `CONNS` connections (default 1), one
//! green thread each; plain OS threads are the clients, each sending `N`
//! messages of `SIZE` bytes one at a time and waiting for each echo. Trace
//! only the main thread (no `-f`), so the figures are the server's alone:
//!
//! ```text
//! cargo build --release --example syscall_probe
//! strace -c target/release/examples/syscall_probe 100000 64      # N SIZE [CONNS]
//! ```
//!
//! Divide the `recvfrom`, `sendto` and `epoll_wait` counts by the number of
//! messages (`N * CONNS`). `strace -f -c` adds the client threads' calls.

use std::io::{Read, Write};
use std::time::Instant;

use greenio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);

    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);

    greenio::run(move || -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let clients: Vec<_> = (0..conns)
            .map(|_| {
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut s = std::net::TcpStream::connect(addr)?;
                    s.set_nodelay(true)?;
                    let msg = vec![b'x'; size];
                    let mut back = vec![0u8; size];
                    for _ in 0..n {
                        s.write_all(&msg)?;
                        s.read_exact(&mut back)?;
                    }
                    Ok(())
                })
            })
            .collect();
        let start = Instant::now();
        let mut handlers = Vec::new();
        for _ in 0..conns {
            let (mut conn, _) = listener.accept()?;
            conn.set_nodelay(true)?;
            handlers.push(greenio::spawn(move || -> std::io::Result<usize> {
                let mut buf = vec![0u8; 64 * 1024];
                let mut echoed = 0usize;
                loop {
                    let got = conn.read(&mut buf)?;
                    if got == 0 {
                        return Ok(echoed);
                    }
                    conn.write_all(&buf[..got])?;
                    echoed += got;
                }
            }));
        }
        let mut echoed = 0;
        for h in handlers {
            echoed += h
                .join()
                .map_err(|e| std::io::Error::other(format!("handler failed: {e:?}")))??;
        }
        let secs = start.elapsed().as_secs_f64();
        for c in clients {
            c.join()
                .map_err(|_| std::io::Error::other("client thread panicked"))??;
        }
        let total = n * conns;
        println!(
            "echoed {total} messages of {size} B over {conns} connection(s) ({echoed} B) in {secs:.2} s: {:.0} msg/s",
            total as f64 / secs
        );
        Ok(())
    })
}
