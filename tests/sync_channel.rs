//! Channels and `Select`: ordering, loss and duplication under load across
//! hubs and OS threads, back-pressure, rendezvous, disconnection,
//! fairness, cancellation and timeouts.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenio::sync::{
    bounded, channel, RecvError, RecvTimeoutError, Select, SendTimeoutError, TryRecvError,
    TrySendError,
};

/// Generous bound on any single wait in these tests.
const LONG: Duration = Duration::from_secs(30);

fn run<T>(hubs: usize, f: impl FnOnce() -> T) -> T {
    util::run_hubs("sync_channel", hubs, f)
}

#[test]
fn order_is_kept_per_sender() {
    run(1, || {
        let (tx, rx) = channel::<(usize, u32)>();
        for p in 0..4 {
            let tx = tx.clone();
            greenio::spawn(move || {
                for i in 0..1000 {
                    tx.send((p, i)).unwrap();
                    if i % 7 == 0 {
                        greenio::yield_now();
                    }
                }
            });
        }
        drop(tx);
        let mut next = [0u32; 4];
        for (p, i) in rx.iter() {
            assert_eq!(i, next[p], "sender {p} out of order");
            next[p] += 1;
        }
        assert_eq!(next, [1000; 4]);
    });
}

/// 8 producers x 8 consumers over one bounded channel; producers and
/// consumers spread over two hubs, one of each a plain OS thread. Every
/// message is received exactly once, and each consumer sees each
/// producer's messages in order.
#[test]
fn mpmc_no_loss_no_duplication_across_hubs_and_os_threads() {
    // The full size: 800,000 messages (about 1-3 s in a debug build).
    let per_producer: u64 = 100_000;
    const P: u64 = 8;
    const C: usize = 8;
    let (count, sum, seen) = run(2, move || {
        let (tx, rx) = bounded::<u64>(64);
        let producer = move |tx: greenio::sync::Sender<u64>, p: u64| {
            for i in 0..per_producer {
                tx.send(p * per_producer + i).unwrap();
            }
        };
        let consumer = move |rx: greenio::sync::Receiver<u64>| {
            let mut last = vec![None::<u64>; P as usize];
            let mut got = Vec::new();
            while let Ok(v) = rx.recv_timeout(LONG) {
                let p = (v / per_producer) as usize;
                if let Some(prev) = last[p] {
                    assert!(v > prev, "producer {p}: {v} after {prev}");
                }
                last[p] = Some(v);
                got.push(v);
            }
            got
        };
        let mut producers = Vec::new();
        let mut os_producer = None;
        for p in 0..P {
            let tx = tx.clone();
            if p == P - 1 {
                os_producer = Some(std::thread::spawn(move || producer(tx, p)));
            } else {
                producers.push(greenio::spawn_on(p as usize % 2, move || producer(tx, p)));
            }
        }
        drop(tx);
        let mut consumers = Vec::new();
        let mut os_consumer = None;
        for c in 0..C {
            let rx = rx.clone();
            if c == C - 1 {
                os_consumer = Some(std::thread::spawn(move || consumer(rx)));
            } else {
                consumers.push(greenio::spawn_on(c % 2, move || consumer(rx)));
            }
        }
        drop(rx);
        for h in producers {
            h.join().unwrap();
        }
        let mut all: Vec<Vec<u64>> = consumers.into_iter().map(|h| h.join().unwrap()).collect();
        let osc = os_consumer.unwrap();
        os_producer.unwrap().join().unwrap();
        all.push(greenio::unblock(move || osc.join()).unwrap());
        let total = P * per_producer;
        let mut seen = vec![false; total as usize];
        let mut count = 0u64;
        let mut sum = 0u64;
        for v in all.into_iter().flatten() {
            assert!(!seen[v as usize], "message {v} received twice");
            seen[v as usize] = true;
            count += 1;
            sum += v;
        }
        (count, sum, seen.iter().all(|s| *s))
    });
    let total = P * per_producer;
    assert_eq!(count, total);
    assert_eq!(sum, total * (total - 1) / 2);
    assert!(seen, "some message was lost");
}

#[test]
fn bounded_channel_applies_back_pressure() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(2);
        let sent = Rc::new(Cell::new(0));
        let s2 = sent.clone();
        let h = greenio::spawn(move || {
            for i in 0..5 {
                tx.send(i).unwrap();
                s2.set(s2.get() + 1);
            }
        });
        for _ in 0..5 {
            greenio::yield_now();
        }
        assert_eq!(sent.get(), 2, "the sender must park on the third message");
        assert!(rx.is_full());
        assert_eq!(rx.recv(), Ok(0));
        for _ in 0..5 {
            greenio::yield_now();
        }
        assert_eq!(sent.get(), 3);
        assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
        h.join().unwrap();
    });
}

#[test]
fn try_send_reports_full_and_disconnected() {
    let (tx, rx) = bounded(1);
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(rx);
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
}

#[test]
fn rendezvous_send_completes_only_when_received() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(0);
        assert_eq!(
            tx.try_send(1),
            Err(TrySendError::Full(1)),
            "no receiver waits"
        );
        let done = Rc::new(Cell::new(false));
        let d2 = done.clone();
        let tx2 = tx.clone();
        let h = greenio::spawn(move || {
            tx2.send(7).unwrap();
            d2.set(true);
        });
        for _ in 0..5 {
            greenio::yield_now();
        }
        assert!(!done.get(), "a rendezvous send must wait for a receiver");
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.recv(), Ok(7));
        h.join().unwrap();
        assert!(done.get());

        // A parked receiver makes try_send succeed.
        let rx2 = rx.clone();
        let r = greenio::spawn(move || rx2.recv_timeout(LONG));
        greenio::yield_now();
        assert_eq!(tx.try_send(8), Ok(()));
        assert_eq!(r.join().unwrap(), Ok(8));

        // Nobody receives: the send times out and takes its message back.
        let t = Instant::now();
        let r = tx.send_timeout(9, Duration::from_millis(20));
        assert_eq!(r, Err(SendTimeoutError::Timeout(9)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(
            rx.is_empty(),
            "a timed-out rendezvous message must be withdrawn"
        );
    });
}

#[test]
fn rendezvous_between_os_thread_and_green_thread() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(0);
        let os = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u32> = (0..100).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        greenio::unblock(move || os.join()).unwrap();
    });
}

#[test]
fn dropping_senders_disconnects_receivers() {
    run(1, || {
        let (tx, rx) = channel::<u32>();
        tx.send(1).unwrap();
        let rx2 = rx.clone();
        let parked = greenio::spawn(move || {
            let first = rx2.recv();
            let second = rx2.recv();
            (first, second)
        });
        greenio::yield_now();
        let rx3 = rx.clone();
        let waiting = greenio::spawn(move || rx3.recv());
        greenio::yield_now();
        drop(tx);
        let (first, second) = parked.join().unwrap();
        assert_eq!(first, Ok(1));
        assert_eq!(second, Err(RecvError));
        assert_eq!(waiting.join().unwrap(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        );
    });
}

#[test]
fn dropping_receivers_disconnects_parked_senders() {
    run(1, || {
        // Bounded and full: the parked sender gets its message back.
        let (tx, rx) = bounded::<String>(1);
        tx.send("a".into()).unwrap();
        let tx2 = tx.clone();
        let parked = greenio::spawn(move || tx2.send("b".into()));
        greenio::yield_now();
        drop(rx);
        assert_eq!(parked.join().unwrap().unwrap_err().into_inner(), "b");
        assert_eq!(tx.send("c".into()).unwrap_err().0, "c");

        // Rendezvous: the same.
        let (tx, rx) = bounded::<String>(0);
        let parked = greenio::spawn(move || tx.send("d".into()));
        greenio::yield_now();
        drop(rx);
        assert_eq!(parked.join().unwrap().unwrap_err().into_inner(), "d");
    });
}

#[test]
fn cancelled_receiver_does_not_steal_a_message() {
    run(1, || {
        let (tx, rx) = channel::<u32>();
        let rx1 = rx.clone();
        let victim = greenio::spawn(move || rx1.recv());
        greenio::yield_now();
        let rx2 = rx.clone();
        let other = greenio::spawn(move || rx2.recv_timeout(LONG));
        greenio::yield_now();
        // Both are parked, the victim first in line.
        victim.cancel();
        tx.send(5).unwrap();
        assert_eq!(other.join().unwrap(), Ok(5));
        assert!(victim.join().unwrap_err().is_cancelled());
        assert!(rx.is_empty());

        // The same with a timeout scope instead of a cancel.
        let rx3 = rx.clone();
        let scoped = greenio::spawn(move || {
            greenio::timeout(Duration::from_millis(5), || rx3.recv()).is_err()
        });
        let rx4 = rx.clone();
        let other = greenio::spawn(move || rx4.recv_timeout(LONG));
        assert!(scoped.join().unwrap(), "the timeout scope must fire");
        tx.send(6).unwrap();
        assert_eq!(other.join().unwrap(), Ok(6));
    });
}

#[test]
fn cancelled_sender_does_not_deliver_or_lose() {
    run(1, || {
        // Bounded: the cancelled sender's message never enters the channel.
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let tx2 = tx.clone();
        let victim = greenio::spawn(move || tx2.send(2));
        greenio::yield_now();
        let tx3 = tx.clone();
        let other = greenio::spawn(move || tx3.send(3));
        greenio::yield_now();
        victim.cancel();
        assert_eq!(rx.recv(), Ok(1));
        assert!(other.join().unwrap().is_ok());
        assert!(victim.join().unwrap_err().is_cancelled());
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3]);

        // Rendezvous: the cancelled sender withdraws its message.
        let (tx, rx) = bounded::<u32>(0);
        let victim = greenio::spawn(move || tx.send(4));
        greenio::yield_now();
        victim.cancel();
        assert!(victim.join().unwrap_err().is_cancelled());
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn timeouts_fire_after_their_duration() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(1);
        let d = Duration::from_millis(30);
        let t = Instant::now();
        assert_eq!(rx.recv_timeout(d), Err(RecvTimeoutError::Timeout));
        assert!(t.elapsed() >= d);
        tx.send(1).unwrap();
        let t = Instant::now();
        assert_eq!(tx.send_timeout(2, d), Err(SendTimeoutError::Timeout(2)));
        assert!(t.elapsed() >= d);
        // Many short timeouts in a row leave the channel working.
        for _ in 0..200 {
            assert!(tx.send_timeout(3, Duration::from_micros(10)).is_err());
        }
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn os_threads_block_and_green_threads_park() {
    run(1, || {
        let (to_os, from_green) = channel::<u32>();
        let (to_green, from_os) = channel::<u32>();
        let os = std::thread::spawn(move || {
            let mut n = 0;
            while let Ok(v) = from_green.recv() {
                to_green.send(v * 2).unwrap();
                n += 1;
            }
            n
        });
        // A green thread keeps running while main is parked on the OS thread.
        let ticks = Rc::new(Cell::new(0u32));
        let t2 = ticks.clone();
        let ticker = greenio::spawn(move || {
            for _ in 0..10 {
                t2.set(t2.get() + 1);
                greenio::sleep(Duration::from_millis(1));
            }
        });
        for i in 0..50 {
            to_os.send(i).unwrap();
            assert_eq!(from_os.recv_timeout(LONG), Ok(i * 2));
        }
        drop(to_os);
        ticker.join().unwrap();
        assert_eq!(ticks.get(), 10);
        assert_eq!(greenio::unblock(move || os.join()).unwrap(), 50);
    });
}

#[test]
fn select_picks_ready_branches_fairly() {
    run(1, || {
        let (tx1, rx1) = channel::<u8>();
        let (tx2, rx2) = channel::<u8>();
        const N: usize = 4000;
        for _ in 0..N {
            tx1.send(1).unwrap();
            tx2.send(2).unwrap();
        }
        let mut picks = [0usize; 2];
        for _ in 0..N {
            let i = Select::new()
                .recv(&rx1, |m| m.unwrap() as usize - 1)
                .recv(&rx2, |m| m.unwrap() as usize - 1)
                .wait();
            picks[i] += 1;
        }
        assert!(
            picks[0] > N / 3 && picks[1] > N / 3,
            "unfair picks: {picks:?}"
        );
    });
}

#[test]
fn select_serves_every_parked_receiver() {
    // Two green threads each select over both channels; every message is
    // received by someone and no selecting receiver is starved.
    run(1, || {
        let (tx1, rx1) = channel::<u32>();
        let (tx2, rx2) = channel::<u32>();
        let served = Rc::new([Cell::new(0u32), Cell::new(0u32)]);
        let total = Rc::new(Cell::new(0u32));
        let mut hs = Vec::new();
        for me in 0..2 {
            let (rx1, rx2, served, total) =
                (rx1.clone(), rx2.clone(), served.clone(), total.clone());
            hs.push(greenio::spawn(move || loop {
                let got = Select::new()
                    .recv(&rx1, |m| m.ok())
                    .recv(&rx2, |m| m.ok())
                    .timeout(LONG, || None)
                    .wait();
                match got {
                    Some(v) => {
                        served[me].set(served[me].get() + 1);
                        total.set(total.get() + v);
                        greenio::yield_now();
                    }
                    None => break,
                }
            }));
        }
        for i in 0..1000 {
            if i % 2 == 0 { &tx1 } else { &tx2 }.send(1).unwrap();
            if i % 3 == 0 {
                greenio::yield_now();
            }
        }
        // A disconnected channel is ready at once (with an error), so wait
        // until everything is received before disconnecting.
        let t = Instant::now();
        while total.get() < 1000 && t.elapsed() < LONG {
            greenio::sleep(Duration::from_millis(1));
        }
        drop((tx1, tx2));
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(total.get(), 1000);
        assert!(
            served[0].get() > 100 && served[1].get() > 100,
            "starved: {} / {}",
            served[0].get(),
            served[1].get()
        );
    });
}

#[test]
fn select_with_send_default_and_timeout() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(1);
        let sent = Select::new()
            .send(&tx, 1, |r| r.is_ok())
            .default(|| false)
            .wait();
        assert!(sent);
        // Full now: the default case runs.
        let sent = Select::new()
            .send(&tx, 2, |r| r.is_ok())
            .default(|| false)
            .wait();
        assert!(!sent);
        // Full: the timeout case runs, after the timeout.
        let t = Instant::now();
        let r = Select::new()
            .send(&tx, 3, |_| "sent")
            .timeout(Duration::from_millis(20), || "timeout")
            .wait();
        assert_eq!(r, "timeout");
        assert!(t.elapsed() >= Duration::from_millis(20));
        // A receiver makes room while we are parked.
        let h = greenio::spawn(move || {
            greenio::sleep(Duration::from_millis(5));
            let v = rx.recv().unwrap();
            (v, rx) // keep the channel connected
        });
        let r = Select::new()
            .send(&tx, 4, |r| r.is_ok())
            .timeout(LONG, || false)
            .wait();
        assert!(r);
        let (first, rx) = h.join().unwrap();
        assert_eq!(first, 1);
        assert_eq!(rx.recv(), Ok(4));
    });
}

#[test]
fn select_across_hubs_and_os_threads() {
    run(2, || {
        let (tx_a, rx_a) = channel::<&'static str>();
        let (tx_b, rx_b) = channel::<&'static str>();
        // Each sender returns its `Sender`: a disconnected channel would be
        // ready at once.
        let remote = greenio::spawn_on(1, move || {
            greenio::sleep(Duration::from_millis(5));
            tx_a.send("hub").unwrap();
            tx_a
        });
        let os = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx_b.send("os").unwrap();
            tx_b
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(
                Select::new()
                    .recv(&rx_a, |m| m.unwrap())
                    .recv(&rx_b, |m| m.unwrap())
                    .timeout(LONG, || "timeout")
                    .wait(),
            );
        }
        got.sort();
        assert_eq!(got, ["hub", "os"]);
        drop(remote.join().unwrap());
        drop(greenio::unblock(move || os.join()).unwrap());
    });
}

#[test]
fn cancelled_select_leaves_channels_consistent() {
    run(1, || {
        let (tx, rx) = channel::<u32>();
        let rx1 = rx.clone();
        let victim = greenio::spawn(move || Select::new().recv(&rx1, |m| m.unwrap()).wait());
        greenio::yield_now();
        let rx2 = rx.clone();
        let other = greenio::spawn(move || rx2.recv_timeout(LONG));
        greenio::yield_now();
        victim.cancel();
        tx.send(11).unwrap();
        assert_eq!(other.join().unwrap(), Ok(11));
        assert!(victim.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn iterators() {
    let (tx, rx) = channel();
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().take(2).collect::<Vec<_>>(), [0, 1]);
    drop(tx);
    assert_eq!((&rx).into_iter().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(rx.into_iter().count(), 0);
}

#[test]
fn many_green_threads_ping_pong_on_one_hub() {
    let rounds = AtomicUsize::new(0);
    run(1, || {
        let (a_tx, a_rx) = bounded::<u32>(0);
        let (b_tx, b_rx) = bounded::<u32>(0);
        let h = greenio::spawn(move || {
            while let Ok(v) = a_rx.recv() {
                b_tx.send(v + 1).unwrap();
            }
        });
        let mut v = 0;
        for _ in 0..10_000 {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
            rounds.fetch_add(1, Ordering::Relaxed);
        }
        drop(a_tx);
        h.join().unwrap();
        assert_eq!(v, 10_000);
    });
    assert_eq!(rounds.load(Ordering::Relaxed), 10_000);
}

/// Regression: a `Select` send branch parked on a rendezvous channel while
/// another sender's message was pending must be woken when a receiver
/// takes that message and a parked receiver is left free (found by
/// `golang_chan::select_stress` under load).
#[test]
fn select_send_wakes_when_pending_rendezvous_message_is_taken() {
    run(1, || {
        let (tx, rx) = bounded::<u32>(0);
        let rx_b = rx.clone();
        let b = greenio::spawn(move || rx_b.recv());
        greenio::yield_now(); // B parks first
        let rx_a = rx.clone();
        let a = greenio::spawn(move || rx_a.recv_timeout(LONG));
        greenio::yield_now(); // then A
        let tx_p = tx.clone();
        let p = greenio::spawn(move || tx_p.send(1)); // wakes B, parks
        let tx_s = tx.clone();
        let s = greenio::spawn(move || {
            // Runs before B: A is parked but B's message is pending, so
            // the select parks too, until B takes message 1.
            Select::new()
                .send(&tx_s, 2, |r| r.is_ok())
                .timeout(LONG, || false)
                .wait()
        });
        assert_eq!(b.join().unwrap(), Ok(1));
        assert!(s.join().unwrap(), "the select send must complete");
        assert_eq!(a.join().unwrap(), Ok(2));
        assert!(p.join().unwrap().is_ok());
    });
}
