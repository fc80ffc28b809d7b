//! Tests ported from the Go programming language's channel tests.
//!
//! Sources (rewritten for greenio, not copied): `src/runtime/chan_test.go`
//! and `test/chan/{doubleselect,fifo,goroutines,nonblock,select,select3,
//! select6,select7,sieve1,zerosize}.go` of the Go distribution,
//! Copyright 2009 The Go Authors, BSD-style license
//! (<https://golang.org/LICENSE>). crossbeam-channel's `tests/golang.rs`
//! did the same for crossbeam.
//!
//! Mapping: goroutine -> green thread (`greenio::spawn`, or `spawn_on` to
//! cross hubs); `make(chan T, n)` -> `bounded(n)`; `close(c)` -> dropping
//! every `Sender`; a receive from a closed channel -> `Err(RecvError)`;
//! `select` -> `Select`; a `nil` channel in a select -> leaving the branch
//! out. Sizes are reduced where Go's are meant for long runs.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use greenio::sync::{bounded, Receiver, RecvError, Select, Sender, TryRecvError, TrySendError};

const LONG: Duration = Duration::from_secs(30);

/// Runs `f` on `hubs` hubs; aborts the test binary if it hangs for two
/// minutes.
fn run<T>(hubs: usize, f: impl FnOnce() -> T) -> T {
    util::run_hubs("golang_chan", hubs, f)
}

fn settle() {
    for _ in 0..5 {
        greenio::yield_now();
    }
}

// ----- runtime/chan_test.go ---------------------------------------------------

/// TestChan.
#[test]
fn chan() {
    run(1, || {
        for cap in 0..20usize {
            // Receive from an empty channel blocks.
            {
                let (tx, rx) = bounded::<i32>(cap);
                let got = Rc::new(Cell::new(false));
                let g2 = got.clone();
                let h = greenio::spawn(move || {
                    let _ = rx.recv();
                    g2.set(true);
                });
                greenio::sleep(Duration::from_millis(1));
                assert!(!got.get(), "chan[{cap}]: receive from empty chan");
                // Ensure that non-blocking receive does not block either.
                tx.send(0).unwrap();
                h.join().unwrap();
                assert!(got.get());
            }
            // Send to a full channel blocks.
            {
                let (tx, rx) = bounded::<i32>(cap);
                for i in 0..cap {
                    tx.send(i as i32).unwrap();
                }
                let sent = Rc::new(Cell::new(false));
                let s2 = sent.clone();
                let h = greenio::spawn(move || {
                    tx.send(0).unwrap();
                    s2.set(true);
                });
                greenio::sleep(Duration::from_millis(1));
                assert!(!sent.get(), "chan[{cap}]: send to full chan");
                let _ = rx.recv().unwrap();
                h.join().unwrap();
                assert!(sent.get());
            }
            // A closed channel yields no value.
            {
                let (tx, rx) = bounded::<i32>(cap);
                drop(tx);
                for _ in 0..cap + 1 {
                    assert_eq!(rx.recv(), Err(RecvError));
                    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
                }
            }
            // Close unblocks a receive.
            {
                let (tx, rx) = bounded::<i32>(cap);
                let h = greenio::spawn(move || rx.recv());
                greenio::sleep(Duration::from_millis(1));
                drop(tx);
                assert_eq!(h.join().unwrap(), Err(RecvError));
            }
            // 100 integers arrive uncorrupted and in FIFO order.
            {
                let (tx, rx) = bounded::<i32>(cap);
                greenio::spawn(move || {
                    for i in 0..100 {
                        tx.send(i).unwrap();
                    }
                });
                for i in 0..100 {
                    assert_eq!(rx.recv(), Ok(i), "chan[{cap}]");
                }
            }
            // 1000 integers from 4 senders to 4 receivers: what is received
            // is what was sent.
            {
                let (tx, rx) = bounded::<usize>(cap);
                const P: usize = 4;
                const L: usize = 1000;
                for _ in 0..P {
                    let tx = tx.clone();
                    greenio::spawn(move || {
                        for i in 0..L {
                            tx.send(i).unwrap();
                        }
                    });
                }
                drop(tx);
                let (done_tx, done_rx) = bounded::<Vec<usize>>(0);
                for _ in 0..P {
                    let (rx, done_tx) = (rx.clone(), done_tx.clone());
                    greenio::spawn(move || {
                        let mut recv = vec![0usize; L];
                        for _ in 0..L {
                            recv[rx.recv().unwrap()] += 1;
                        }
                        done_tx.send(recv).unwrap();
                    });
                }
                let mut recv = vec![0usize; L];
                for _ in 0..P {
                    for (i, n) in done_rx.recv().unwrap().into_iter().enumerate() {
                        recv[i] += n;
                    }
                }
                assert_eq!(recv, vec![P; L], "chan[{cap}]");
            }
            // len and cap.
            {
                let (tx, rx) = bounded::<i32>(cap);
                assert_eq!(rx.len(), 0);
                assert_eq!(tx.capacity(), Some(cap));
                for i in 0..cap {
                    tx.send(i as i32).unwrap();
                }
                assert_eq!(rx.len(), cap);
                assert_eq!(rx.capacity(), Some(cap));
            }
        }
    });
}

/// TestNonblockRecvRace: a non-blocking receive on a channel that holds a
/// value (or is closed) must not report "not ready".
#[test]
fn nonblock_recv_race() {
    run(2, || {
        for i in 0..500 {
            let (tx, rx) = bounded::<i32>(1);
            tx.send(1).unwrap();
            let rx2 = rx.clone();
            let h = greenio::spawn_on(i % 2, move || {
                Select::new().recv(&rx2, |_| true).default(|| false).wait()
            });
            drop(tx);
            let _ = rx.recv();
            assert!(h.join().unwrap(), "chan is not ready");
        }
    });
}

/// TestSelfSelect: a select that sends and receives on the same
/// unbuffered channel must never meet itself.
#[test]
fn self_select() {
    run(2, || {
        for cap in [0usize, 10] {
            let (tx, rx) = bounded::<usize>(cap);
            let hs: Vec<_> = (0..2usize)
                .map(|p| {
                    let (tx, rx) = (tx.clone(), rx.clone());
                    greenio::spawn_on(p, move || {
                        for i in 0..1000 {
                            if p == 0 || i % 2 == 0 {
                                let r = Select::new()
                                    .send(&tx, p, |_| None)
                                    .recv(&rx, |v| Some(v.unwrap()))
                                    .timeout(LONG, || Some(usize::MAX))
                                    .wait();
                                assert_ne!(r, Some(usize::MAX), "select timed out");
                                if cap == 0 {
                                    assert_ne!(r, Some(p), "self receive");
                                }
                            } else {
                                let r = Select::new()
                                    .recv(&rx, |v| Some(v.unwrap()))
                                    .send(&tx, p, |_| None)
                                    .timeout(LONG, || Some(usize::MAX))
                                    .wait();
                                assert_ne!(r, Some(usize::MAX), "select timed out");
                                if cap == 0 {
                                    assert_ne!(r, Some(p), "self receive");
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

/// TestSelectStress: several channels, plain senders and receivers plus a
/// select-based sender and a select-based receiver, each finishing a
/// channel by leaving it out once it has done N operations on it.
#[test]
fn select_stress() {
    const N: usize = 2000;
    run(2, || {
        let caps = [0usize, 0, 2, 3];
        let chans: Vec<(Sender<usize>, Receiver<usize>)> =
            caps.iter().map(|&c| bounded(c)).collect();
        let mut hs = Vec::new();
        // A plain sender and a plain receiver per channel.
        for (k, (tx, rx)) in chans.iter().enumerate() {
            let tx = tx.clone();
            hs.push(greenio::spawn_on(k % 2, move || {
                for i in 0..N {
                    tx.send(i).unwrap();
                }
            }));
            let rx = rx.clone();
            hs.push(greenio::spawn_on((k + 1) % 2, move || {
                for _ in 0..N {
                    rx.recv().unwrap();
                }
            }));
        }
        // A select sender: N sends on each channel.
        let txs: Vec<Sender<usize>> = chans.iter().map(|c| c.0.clone()).collect();
        hs.push(greenio::spawn_on(0, move || {
            let mut n = [0usize; 4];
            while n.iter().any(|&x| x < N) {
                let mut sel = Select::new();
                for (k, tx) in txs.iter().enumerate() {
                    if n[k] < N {
                        sel = sel.send(tx, 3, move |r| {
                            r.unwrap();
                            k
                        });
                    }
                }
                let k = sel.wait();
                n[k] += 1;
            }
        }));
        // A select receiver: N receives on each channel.
        let rxs: Vec<Receiver<usize>> = chans.iter().map(|c| c.1.clone()).collect();
        hs.push(greenio::spawn_on(1, move || {
            let mut n = [0usize; 4];
            while n.iter().any(|&x| x < N) {
                let mut sel = Select::new();
                for (k, rx) in rxs.iter().enumerate() {
                    if n[k] < N {
                        sel = sel.recv(rx, move |r| {
                            r.unwrap();
                            k
                        });
                    }
                }
                let k = sel.wait();
                n[k] += 1;
            }
        }));
        for h in hs {
            h.join().unwrap();
        }
        for (_, rx) in &chans {
            assert!(rx.is_empty());
        }
    });
}

/// TestSelectFairness: with two channels always ready, a select picks
/// each about half of the time (Go: within 4.5 sigma... of 10,000 trials).
#[test]
fn select_fairness() {
    const TRIALS: usize = 10_000;
    run(1, || {
        let (c1_tx, c1) = bounded::<u8>(TRIALS + 1);
        let (c2_tx, c2) = bounded::<u8>(TRIALS + 1);
        for _ in 0..TRIALS + 1 {
            c1_tx.send(1).unwrap();
            c2_tx.send(2).unwrap();
        }
        let (_c3_tx, c3) = bounded::<u8>(0);
        let (_c4_tx, c4) = bounded::<u8>(0);
        let (out_tx, out) = bounded::<u8>(0);
        let (done_tx, done) = bounded::<u8>(0);
        greenio::spawn(move || loop {
            let Some(b) = Select::new()
                .recv(&c3, |b| b.ok())
                .recv(&c4, |b| b.ok())
                .recv(&c1, |b| b.ok())
                .recv(&c2, |b| b.ok())
                .wait()
            else {
                return;
            };
            let stop = Select::new()
                .send(&out_tx, b, |_| false)
                .recv(&done, |_| true)
                .wait();
            if stop {
                return;
            }
        });
        let (mut cnt1, mut cnt2) = (0usize, 0usize);
        for _ in 0..TRIALS {
            match out.recv().unwrap() {
                1 => cnt1 += 1,
                2 => cnt2 += 1,
                b => panic!("unexpected value {b} on out"),
            }
        }
        drop(done_tx);
        let r = cnt1 as f64 / TRIALS as f64;
        let e = (r - 0.5).abs();
        assert!(
            e <= 4.5 / (TRIALS as f64).sqrt(),
            "unfair select: in {TRIALS} trials, results were {cnt1}, {cnt2}"
        );
    });
}

/// TestPseudoRandomSend: a select with two sends of different values to
/// the same unbuffered channel picks both.
#[test]
fn pseudo_random_send() {
    const N: usize = 100;
    run(1, || {
        for cap in [0usize, N] {
            let (tx, rx) = bounded::<u8>(cap);
            let h = greenio::spawn(move || (0..N).map(|_| rx.recv().unwrap()).collect::<Vec<_>>());
            for _ in 0..N {
                Select::new()
                    .send(&tx, 1, |r| r.unwrap())
                    .send(&tx, 0, |r| r.unwrap())
                    .wait();
            }
            let l = h.join().unwrap();
            let n1 = l.iter().filter(|&&v| v == 1).count();
            let n0 = N - n1;
            assert!(
                n0 > N / 10 && n1 > N / 10,
                "want pseudorandom, got {n0} zeros and {n1} ones (chan cap {cap})"
            );
        }
    });
}

/// TestMultiConsumer: many workers forward values from one channel to
/// another, yielding now and then; nothing is lost or duplicated.
#[test]
fn multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 27_182;
    let pn = [2usize, 3, 7, 11, 13, 17, 19, 23, 27, 31];
    run(2, || {
        let (q_tx, q) = bounded::<usize>(NWORK * 3);
        let (r_tx, r) = bounded::<usize>(NWORK * 3);
        let mut hs = Vec::new();
        for w in 0..NWORK {
            let (q, r_tx) = (q.clone(), r_tx.clone());
            hs.push(greenio::spawn_on(w % 2, move || {
                for v in q.iter() {
                    // Mess with the fifo-ish nature of the range.
                    if pn[w % pn.len()] == v {
                        greenio::yield_now();
                    }
                    r_tx.send(v).unwrap();
                }
            }));
        }
        drop((q, r_tx));
        let feeder = greenio::spawn_on(1, move || {
            let mut expect = 0;
            for i in 0..NITER {
                let v = pn[i % pn.len()];
                expect += v;
                q_tx.send(v).unwrap();
            }
            expect
        });
        let (mut n, mut s) = (0, 0);
        for v in r.iter() {
            n += 1;
            s += v;
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(n, NITER);
        assert_eq!(s, feeder.join().unwrap());
    });
}

/// TestSelectDuplicateChannel: the same channel twice in one select.
#[test]
fn select_duplicate_channel() {
    run(1, || {
        let (c_tx, c) = bounded::<i32>(0);
        let (d_tx, d) = bounded::<i32>(0);
        let (e_tx, e) = bounded::<i32>(0);
        let c2 = c.clone();
        greenio::spawn(move || {
            Select::new()
                .recv(&c2, |_| ())
                .recv(&c2, |_| ())
                .recv(&d, |_| ())
                .wait();
            e_tx.send(9).unwrap();
        });
        greenio::sleep(Duration::from_millis(1)); // the select is parked
        let c3 = c.clone();
        greenio::spawn(move || {
            let _ = c3.recv();
        });
        greenio::sleep(Duration::from_millis(1)); // so is the receive
        d_tx.send(7).unwrap(); // wakes the select
        assert_eq!(e.recv(), Ok(9)); // it finished
        c_tx.send(8).unwrap(); // the plain receive is still there
        drop(c);
    });
}

// ----- test/chan ------------------------------------------------------------------

/// fifo.go: a buffered channel is FIFO, and a chain of green threads
/// over unbuffered channels hands values on in order.
#[test]
fn fifo() {
    const N: i32 = 10;
    run(1, || {
        // AsynchFifo
        let (tx, rx) = bounded::<i32>(N as usize);
        for i in 0..N {
            tx.send(i).unwrap();
        }
        for i in 0..N {
            assert_eq!(rx.recv(), Ok(i), "AsynchFifo");
        }
        // SynchFifo
        let (ch_tx, ch) = bounded::<i32>(0);
        let (mut in_tx, mut in_rx) = bounded::<()>(0);
        let start = in_tx.clone();
        for i in 0..N {
            let (out_tx, out_rx) = bounded::<()>(0);
            let ch = ch.clone();
            let my_in = in_rx;
            greenio::spawn(move || {
                my_in.recv().unwrap();
                assert_eq!(ch.recv(), Ok(i), "SynchFifo");
                out_tx.send(()).unwrap();
            });
            in_rx = out_rx;
            in_tx = start.clone();
        }
        drop(in_tx);
        start.send(()).unwrap();
        for i in 0..N {
            ch_tx.send(i).unwrap();
        }
        in_rx.recv().unwrap();
    });
}

/// goroutines.go: a chain of green threads, each passing on what it
/// receives; the value crosses all of them.
#[test]
fn goroutines_chain() {
    const N: usize = 1000;
    run(1, || {
        let (leftmost_tx, leftmost) = bounded::<usize>(0);
        let mut right_tx = leftmost_tx;
        for _ in 0..N {
            let (tx, rx) = bounded::<usize>(0);
            let left = right_tx;
            greenio::spawn(move || left.send(rx.recv().unwrap() + 1).unwrap());
            right_tx = tx;
        }
        right_tx.send(0).unwrap();
        assert_eq!(leftmost.recv(), Ok(N));
    });
}

/// nonblock.go: non-blocking operations never block, and succeed once a
/// partner is there.
#[test]
fn nonblock() {
    run(1, || {
        for cap in [0usize, 1] {
            let (tx, rx) = bounded::<i32>(cap);
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            if cap == 0 {
                assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
            }
            // A parked receiver: a non-blocking send succeeds within a few tries.
            let rx2 = rx.clone();
            let h = greenio::spawn(move || rx2.recv().unwrap());
            let mut tries = 0;
            loop {
                match tx.try_send(123) {
                    Ok(()) => break,
                    Err(TrySendError::Full(_)) => {
                        tries += 1;
                        assert!(tries < 1000, "try_send never succeeded (cap {cap})");
                        greenio::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(h.join().unwrap(), 123);
            // A parked sender: a non-blocking receive succeeds within a few tries.
            let tx2 = tx.clone();
            greenio::spawn(move || tx2.send(456).unwrap());
            let mut tries = 0;
            let v = loop {
                match rx.try_recv() {
                    Ok(v) => break v,
                    Err(TryRecvError::Empty) => {
                        tries += 1;
                        assert!(tries < 1000, "try_recv never succeeded (cap {cap})");
                        greenio::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(v, 456);
        }
    });
}

/// select.go: a select with a default picks each ready send once, then
/// the default.
#[test]
fn select_sends_then_default() {
    run(1, || {
        let counter = Cell::new(0u32);
        let get_value = || {
            counter.set(counter.get() + 1);
            1u32 << (counter.get() - 1)
        };
        let send = |a: &Sender<u32>, b: &Sender<u32>| {
            let (mut a_live, mut b_live) = (true, true);
            let mut i = 0;
            loop {
                let mut sel = Select::new();
                // Go evaluates every send operand on entering select.
                if a_live {
                    sel = sel.send(a, get_value(), |_| 0);
                }
                if b_live {
                    sel = sel.send(b, get_value(), |_| 1);
                }
                match sel.default(|| 2).wait() {
                    0 => a_live = false,
                    1 => b_live = false,
                    _ => return i,
                }
                i += 1;
            }
        };
        let (a_tx, a) = bounded::<u32>(1);
        let (b_tx, b) = bounded::<u32>(1);
        assert_eq!(send(&a_tx, &b_tx), 2);
        let v = a.recv().unwrap() | b.recv().unwrap();
        assert_eq!(v.count_ones(), 2, "both sends happened once");
        assert_eq!(send(&a_tx, &b_tx), 2);
        let (c_tx, c) = bounded::<u32>(2);
        assert_eq!(send(&c_tx, &c_tx), 2);
        assert_eq!(c.len(), 2);
        drop((a, b));
    });
}

/// select3.go: a closed channel never blocks a receive, alone or in a
/// select; a send to a channel without receivers fails at once.
#[test]
fn select_closed_channels_never_block() {
    run(1, || {
        let (tx, rx) = bounded::<i32>(0);
        drop(tx);
        assert_eq!(rx.recv(), Err(RecvError));
        let (_other_tx, other) = bounded::<i32>(0);
        let r = Select::new()
            .recv(&rx, |r| r.is_err())
            .recv(&other, |_| false)
            .timeout(LONG, || false)
            .wait();
        assert!(r, "a closed channel is ready in a select");
        let (tx, rx) = bounded::<i32>(1);
        drop(rx);
        assert!(tx.send(1).is_err());
        let r = Select::new()
            .send(&tx, 2, |r| r.is_err())
            .timeout(LONG, || false)
            .wait();
        assert!(r);
    });
}

/// select6.go (Go issue 2075): a failed select case must not corrupt the
/// queues of the channels it was parked on.
#[test]
fn select_does_not_corrupt_queues() {
    run(1, || {
        let (c1_tx, c1) = bounded::<bool>(0);
        let (c2_tx, c2) = bounded::<bool>(0);
        let (c3_tx, c3) = bounded::<bool>(0);
        let c1a = c1.clone();
        greenio::spawn(move || {
            let _ = c1a.recv();
        });
        let c1b = c1.clone();
        greenio::spawn(move || {
            Select::new()
                .recv(&c1b, |_| panic!("dummy"))
                .recv(&c2, |_| c3_tx.send(true).unwrap())
                .wait();
            let _ = c1b.recv();
        });
        greenio::spawn(move || c2_tx.send(true).unwrap());
        c3.recv().unwrap();
        c1_tx.send(true).unwrap();
        c1_tx.send(true).unwrap();
    });
}

/// select7.go: receives through the plain call and through selects of
/// one and two branches all get the value a sender sends.
#[test]
fn select_receive_forms() {
    run(1, || {
        let recv1 = |c: &Receiver<i32>| c.recv().unwrap();
        let recv2 = |c: &Receiver<i32>| Select::new().recv(c, |v| v.unwrap()).wait();
        let recv3 = |c: &Receiver<i32>| {
            let (_tx, dummy) = bounded::<i32>(0);
            Select::new()
                .recv(c, |v| v.unwrap())
                .recv(&dummy, |_| panic!("dummy"))
                .wait()
        };
        type RecvForm<'a> = &'a dyn Fn(&Receiver<i32>) -> i32;
        let forms: [RecvForm; 3] = [&recv1, &recv2, &recv3];
        for recv in forms {
            // The sender parks first, then the receive; and the other way.
            let (tx, rx) = bounded::<i32>(0);
            let tx2 = tx.clone();
            greenio::spawn(move || tx2.send(1).unwrap());
            settle();
            assert_eq!(recv(&rx), 1);
            greenio::spawn(move || {
                greenio::yield_now();
                tx.send(2).unwrap();
            });
            assert_eq!(recv(&rx), 2);
        }
    });
}

/// sieve1.go: the concurrent prime sieve, a daisy chain of filters.
#[test]
fn sieve() {
    run(1, || {
        let (gen_tx, mut ch) = bounded::<u32>(0);
        greenio::spawn(move || {
            for i in 2.. {
                if gen_tx.send(i).is_err() {
                    return;
                }
            }
        });
        let mut primes = Vec::new();
        for _ in 0..25 {
            let prime = ch.recv().unwrap();
            primes.push(prime);
            let (tx, next) = bounded::<u32>(0);
            let input = ch;
            greenio::spawn(move || {
                for i in input.iter() {
                    if i % prime != 0 && tx.send(i).is_err() {
                        return;
                    }
                }
            });
            ch = next;
        }
        assert_eq!(
            primes,
            [
                2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79,
                83, 89, 97
            ]
        );
    });
}

/// doubleselect.go: one sender selects among four unbuffered channels;
/// receivers multiplex them; every value arrives exactly once.
#[test]
fn double_select() {
    const ITER: usize = 10_000;
    run(2, || {
        let chans: Vec<(Sender<usize>, Receiver<usize>)> = (0..4).map(|_| bounded(0)).collect();
        let txs: Vec<Sender<usize>> = chans.iter().map(|c| c.0.clone()).collect();
        greenio::spawn_on(1, move || {
            for i in 1..=ITER {
                let mut sel = Select::new();
                for tx in &txs {
                    sel = sel.send(tx, i, |r| r.unwrap());
                }
                sel.wait();
            }
        });
        let (mux_tx, mux) = bounded::<usize>(0);
        for (hub, (_, rx)) in chans.iter().enumerate() {
            let (rx, mux_tx) = (rx.clone(), mux_tx.clone());
            greenio::spawn_on(hub % 2, move || {
                for v in rx.iter() {
                    mux_tx.send(v).unwrap();
                }
            });
        }
        drop(chans);
        drop(mux_tx);
        let mut seen = vec![false; ITER + 1];
        let mut n = 0;
        for v in mux.iter() {
            assert!(!seen[v], "got duplicate value: {v}");
            seen[v] = true;
            n += 1;
        }
        assert_eq!(n, ITER);
    });
}

/// zerosize.go: channels of zero-sized values work like any other.
#[test]
fn zero_size() {
    let count = AtomicUsize::new(0);
    run(1, || {
        let (tx, rx) = bounded::<()>(0);
        let h = greenio::spawn(move || rx.iter().count());
        for _ in 0..100 {
            tx.send(()).unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        }
        drop(tx);
        assert_eq!(h.join().unwrap(), 100);
        let (tx, rx) = bounded::<[u8; 0]>(4);
        tx.send([]).unwrap();
        assert_eq!(rx.recv(), Ok([]));
    });
    assert_eq!(count.load(Ordering::Relaxed), 100);
}
