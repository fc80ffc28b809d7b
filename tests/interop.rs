//! Interop (issue 13): `block_on`, `JoinHandle` as a future, tokio behind a
//! side thread, and `green_local!`.

mod util;

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A minimal async channel: `send` is a plain call usable from any thread,
/// `recv` is a future. Enough to drive `block_on` from outside without any
/// executor crate.
struct Chan<T> {
    inner: Mutex<(VecDeque<T>, Option<Waker>)>,
}

impl<T> Chan<T> {
    fn new() -> Arc<Chan<T>> {
        Arc::new(Chan {
            inner: Mutex::new((VecDeque::new(), None)),
        })
    }

    fn send(&self, v: T) {
        let waker = {
            let mut g = self.inner.lock().unwrap();
            g.0.push_back(v);
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn recv(self: &Arc<Self>) -> Recv<T> {
        Recv(self.clone())
    }
}

struct Recv<T>(Arc<Chan<T>>);

impl<T> Future for Recv<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = self.0.inner.lock().unwrap();
        match g.0.pop_front() {
            Some(v) => Poll::Ready(v),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ----- block_on ------------------------------------------------------------

#[test]
fn block_on_future_completed_by_os_thread_while_neighbours_run() {
    util::run("block_on os thread", || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = ticks.clone();
        let neighbour = greenio::spawn(move || {
            for _ in 0..20 {
                t2.fetch_add(1, Ordering::SeqCst);
                greenio::sleep(Duration::from_millis(1));
            }
        });
        let chan = Chan::new();
        let (c2, t3) = (chan.clone(), ticks.clone());
        // The OS thread completes the future only once the neighbour has
        // run: if block_on blocked the hub, this would never happen.
        let os = std::thread::spawn(move || {
            while t3.load(Ordering::SeqCst) < 10 {
                std::thread::sleep(Duration::from_millis(1));
            }
            c2.send(42u32);
        });
        assert_eq!(greenio::block_on(chan.recv()), 42);
        assert!(ticks.load(Ordering::SeqCst) >= 10);
        os.join().unwrap();
        neighbour.join().unwrap();
    });
}

async fn add_two(rx: &Arc<Chan<u64>>) -> u64 {
    let a = rx.recv().await;
    let b = rx.recv().await;
    a + b
}

async fn ping_pong(rx: Arc<Chan<u64>>, tx: Arc<Chan<u64>>, rounds: u64, first: bool) -> u64 {
    let mut last = 0;
    if first {
        tx.send(0);
        tx.send(0);
    }
    for _ in 0..rounds {
        // two nested awaits per round, one level down
        let v = add_two(&rx).await;
        last = v;
        tx.send(v + 1);
        tx.send(0);
    }
    last
}

#[test]
fn block_on_nested_awaits_across_two_hubs() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = rt.run(|| {
            let a_in = Chan::new();
            let b_in = Chan::new();
            let (ai, bi) = (a_in.clone(), b_in.clone());
            let a = greenio::spawn_on(0, move || {
                let hub = greenio::current().hub();
                (hub, greenio::block_on(ping_pong(ai, bi, 1000, true)))
            });
            let b = greenio::spawn_on(1, move || {
                let hub = greenio::current().hub();
                (hub, greenio::block_on(ping_pong(b_in, a_in, 1000, false)))
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let _ = tx.send(r);
    });
    let ((hub_a, last_a), (hub_b, last_b)) = rx.recv_timeout(util::LIMIT).expect("ping-pong hung");
    assert_eq!((hub_a, hub_b), (0, 1));
    // Each round adds one on each side: a's last value is 2*1000 - 1.
    assert_eq!(last_b, 2 * 1000 - 2);
    assert_eq!(last_a, 2 * 1000 - 1);
}

#[test]
fn block_on_outside_green_threads_blocks_the_os_thread() {
    assert_eq!(greenio::block_on(async { 6 * 7 }), 42);
    let chan = Chan::new();
    let c2 = chan.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        c2.send("from another thread");
    });
    assert_eq!(greenio::block_on(chan.recv()), "from another thread");
    sender.join().unwrap();
}

#[test]
fn os_thread_awaits_a_green_thread_with_block_on() {
    util::run("os awaits green", || {
        let h = greenio::spawn(|| {
            greenio::sleep(Duration::from_millis(10));
            "green"
        });
        let os = std::thread::spawn(move || greenio::block_on(h));
        // Join the OS thread without blocking the hub.
        let got = greenio::unblock(move || os.join().unwrap());
        assert_eq!(got.unwrap(), "green");
    });
}

#[test]
fn cancel_green_thread_parked_in_block_on_drops_the_future() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    util::run("cancel block_on", move || {
        let d2 = d.clone();
        let h = greenio::spawn(move || {
            greenio::block_on(async move {
                let _guard = DropCounter(d2);
                pending::<()>().await;
            });
            unreachable!("block_on(pending()) returned");
        });
        greenio::sleep(Duration::from_millis(5));
        assert!(!h.is_finished());
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(d.load(Ordering::SeqCst), 1, "the future was not dropped");
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn timeout_unwinds_out_of_block_on_and_the_next_block_on_works() {
    util::run("timeout block_on", || {
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let k2 = kept.clone();
        let r = greenio::timeout(Duration::from_millis(10), move || {
            greenio::block_on(std::future::poll_fn(move |cx| {
                *k2.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }))
        });
        assert!(r.is_err());
        // The waker the timed-out future stored outlives the call and must
        // do nothing when fired.
        let stale = kept
            .lock()
            .unwrap()
            .take()
            .expect("the future stored its waker");

        let chan = Chan::new();
        let c2 = chan.clone();
        let os = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            stale.wake_by_ref(); // a stale wake first
            c2.send(7u8);
            stale.wake();
        });
        assert_eq!(greenio::block_on(chan.recv()), 7);
        greenio::unblock(move || os.join().unwrap());
    });
}

#[test]
fn timeout_of_block_on_pending_drops_the_future() {
    util::run("timeout drops", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let r = greenio::timeout(Duration::from_millis(10), move || {
            greenio::block_on(async move {
                let _guard = DropCounter(d);
                pending::<u32>().await
            })
        });
        assert!(r.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A future that counts its polls and is ready once `ready` is set.
struct Counted {
    polls: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for Counted {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.ready.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn stale_waker_of_an_earlier_block_on_does_not_repoll_a_later_one() {
    util::run("stale waker", || {
        // First call: keep its waker after it returns.
        let old = greenio::block_on(std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())));
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
        let (r2, w2) = (ready.clone(), waker.clone());
        let os = std::thread::spawn(move || {
            // Hammer the old waker while the second call waits.
            for _ in 0..1000 {
                old.wake_by_ref();
            }
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..1000 {
                old.wake_by_ref();
            }
            r2.store(true, Ordering::SeqCst);
            let w = w2.lock().unwrap().take().expect("polled once");
            w.wake();
        });
        greenio::block_on(Counted {
            polls: polls.clone(),
            ready,
            waker,
        });
        // One poll before the wait, one after the real wake: the old waker
        // resumed nothing.
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        greenio::unblock(move || os.join().unwrap());
    });
}

#[test]
fn self_waking_future_lets_neighbours_run() {
    util::run("self wake", || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = ticks.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let neighbour = greenio::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                t2.fetch_add(1, Ordering::SeqCst);
                greenio::yield_now();
            }
        });
        // An async yield loop: wake self, return Pending, until the
        // neighbour has run 100 times. Without the hub getting a turn on
        // each self-wake this would spin forever.
        greenio::block_on(std::future::poll_fn(|cx| {
            if ticks.load(Ordering::SeqCst) >= 100 {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }));
        stop.store(true, Ordering::SeqCst);
        neighbour.join().unwrap();
    });
}

#[test]
fn many_green_threads_block_on_wakes_from_many_os_threads() {
    util::run("many block_on", || {
        let n = 200;
        let mut hs = Vec::new();
        let mut senders = Vec::new();
        for i in 0..n {
            let chan = Chan::new();
            senders.push(chan.clone());
            hs.push(greenio::spawn(move || {
                let mut sum = 0u64;
                for _ in 0..10 {
                    sum += greenio::block_on(chan.recv());
                }
                sum + i
            }));
        }
        let os: Vec<_> = senders
            .chunks(50)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for round in 0..10u64 {
                        for c in &chunk {
                            c.send(round);
                        }
                    }
                })
            })
            .collect();
        let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, n * 45 + n * (n - 1) / 2);
        greenio::unblock(move || os.into_iter().for_each(|t| t.join().unwrap()));
    });
}

// ----- JoinHandle as a future ------------------------------------------------

#[test]
fn join_handle_awaited_from_a_future() {
    util::run("await join handle", || {
        let slow = greenio::spawn(|| {
            greenio::sleep(Duration::from_millis(10));
            1
        });
        let fast = greenio::spawn(|| 2);
        let boom = greenio::spawn(|| -> i32 { panic!("boom") });
        let (a, b, c) = greenio::block_on(async move { (slow.await, fast.await, boom.await) });
        assert_eq!(a.unwrap(), 1);
        assert_eq!(b.unwrap(), 2);
        assert_eq!(c.unwrap_err().panic_message(), Some("boom"));

        // A cancelled green thread's handle resolves to Cancelled.
        let stuck = greenio::spawn(|| greenio::sleep(Duration::from_secs(3600)));
        stuck.cancel();
        assert!(greenio::block_on(stuck).unwrap_err().is_cancelled());
    });
}

#[test]
fn join_handle_awaited_across_hubs_and_mixed_with_join() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = rt.run(|| {
            let remote = greenio::spawn_on(1, || {
                greenio::sleep(Duration::from_millis(10));
                greenio::current().hub()
            });
            let on_hub = greenio::block_on(remote).unwrap();

            // Polled once (pending, a waker registered), then joined the
            // blocking way: both joiners are honoured.
            let mut h = greenio::spawn_on(1, || {
                greenio::sleep(Duration::from_millis(10));
                "late"
            });
            let noop = Waker::noop();
            let mut cx = Context::from_waker(noop);
            assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
            (on_hub, h.join().unwrap())
        });
        let _ = tx.send(r);
    });
    assert_eq!(rx.recv_timeout(util::LIMIT).expect("hung"), (1, "late"));
}

// ----- tokio on a side thread --------------------------------------------------

#[test]
fn tokio_side_runtime_task_awaited_from_green_threads() {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = tokio_rt.handle().clone();
    let stop = Chan::new();
    let stop_rx = stop.clone();
    let side = std::thread::spawn(move || tokio_rt.block_on(stop_rx.recv()));
    let total = util::run("tokio bridge", move || {
        let hs: Vec<_> = (0..20u64)
            .map(|i| {
                let handle = handle.clone();
                greenio::spawn(move || {
                    let mut sum = 0;
                    for j in 0..5u64 {
                        let task = handle.spawn(async move {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            i * 10 + j
                        });
                        sum += greenio::block_on(task).unwrap();
                    }
                    sum
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    stop.send(());
    side.join().unwrap();
    // sum over i of (50 i + 10)
    assert_eq!(total, 50 * (19 * 20 / 2) + 20 * 10);
}

// ----- green_local! ----------------------------------------------------------------

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

greenio::green_local! {
    static COUNTER: Cell<u64> = Cell::new(0);
    /// Documented, public within the test crate.
    pub(crate) static NAME: std::cell::RefCell<String> = std::cell::RefCell::new(String::from("unset"));
}

#[test]
fn green_locals_are_per_green_thread_across_yields() {
    util::run("green locals", || {
        let hs: Vec<_> = (1..=50u64)
            .map(|i| {
                greenio::spawn(move || {
                    NAME.with(|n| *n.borrow_mut() = format!("g{i}"));
                    for _ in 0..10 {
                        COUNTER.with(|c| c.set(c.get() + i));
                        greenio::yield_now();
                    }
                    (COUNTER.with(Cell::get), NAME.with(|n| n.borrow().clone()))
                })
            })
            .collect();
        COUNTER.with(|c| c.set(1000));
        for (i, h) in (1..=50u64).zip(hs) {
            assert_eq!(h.join().unwrap(), (10 * i, format!("g{i}")));
        }
        // The main green thread has its own value, untouched by the others.
        assert_eq!(COUNTER.with(Cell::get), 1000);
        assert_eq!(NAME.with(|n| n.borrow().clone()), "unset");
    });
}

static LAZY_INITS: AtomicUsize = AtomicUsize::new(0);
static LAZY_DROPS: Mutex<Option<Arc<AtomicUsize>>> = Mutex::new(None);

greenio::green_local! {
    static LAZY: Tracked = {
        LAZY_INITS.fetch_add(1, Ordering::SeqCst);
        Tracked(LAZY_DROPS.lock().unwrap().clone().expect("test sets the counter"))
    };
}

#[test]
fn green_locals_are_lazy_and_dropped_when_the_green_thread_ends() {
    let drops = Arc::new(AtomicUsize::new(0));
    *LAZY_DROPS.lock().unwrap() = Some(drops.clone());
    util::run("lazy locals", move || {
        let unused = greenio::spawn(greenio::yield_now);
        unused.join().unwrap();
        assert_eq!(
            LAZY_INITS.load(Ordering::SeqCst),
            0,
            "initialised without use"
        );

        let user = greenio::spawn(|| {
            LAZY.with(|_| ());
            LAZY.with(|_| ()); // same value, no second init
            greenio::sleep(Duration::from_millis(2));
            LAZY.with(|_| ());
        });
        user.join().unwrap();
        // Dropped before the result was published.
        assert_eq!(LAZY_INITS.load(Ordering::SeqCst), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1);

        // A cancelled green thread's locals are dropped too.
        let victim = greenio::spawn(|| {
            LAZY.with(|_| ());
            greenio::sleep(Duration::from_secs(3600));
        });
        greenio::yield_now();
        victim.cancel();
        assert!(victim.join().unwrap_err().is_cancelled());
        assert_eq!(LAZY_INITS.load(Ordering::SeqCst), 2);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

greenio::green_local! {
    static OUTER: Resurrect = Resurrect;
    static INNER: Cell<u32> = Cell::new(0);
}

static RESURRECT_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A destructor that touches another local after the map was taken.
struct Resurrect;
impl Drop for Resurrect {
    fn drop(&mut self) {
        RESURRECT_DROPS.fetch_add(1, Ordering::SeqCst);
        INNER.with(|c| c.set(c.get() + 1));
    }
}

#[test]
fn green_local_destructor_using_another_local_terminates() {
    util::run("resurrect", || {
        let h = greenio::spawn(|| {
            OUTER.with(|_| ());
            INNER.with(|c| c.set(5));
        });
        h.join().unwrap();
        assert_eq!(RESURRECT_DROPS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn green_locals_outside_green_threads_are_per_os_thread() {
    COUNTER.with(|c| c.set(7));
    let other = std::thread::spawn(|| {
        COUNTER.with(|c| c.set(c.get() + 1));
        COUNTER.with(Cell::get)
    })
    .join()
    .unwrap();
    assert_eq!(other, 1);
    assert_eq!(COUNTER.with(Cell::get), 7);
    // A green thread started from here does not see the OS thread's value.
    let inside = greenio::run(|| COUNTER.with(Cell::get));
    assert_eq!(inside, 0);
    assert_eq!(COUNTER.with(Cell::get), 7);
}

// ----- examples/async_bridge -----------------------------------------------------

#[test]
fn async_bridge_example_answers_through_tokio_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Write};
    let mut ex = util::Example::start_any_port("async_bridge");
    let addr = ex.addr;
    // Several clients at once, each on its own green thread of the server.
    let replies = util::run("async_bridge clients", move || {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                greenio::spawn(move || {
                    let conn = greenio::net::TcpStream::connect(addr).unwrap();
                    let mut reader = BufReader::new(&conn);
                    let mut got = Vec::new();
                    for j in 0..5 {
                        (&conn)
                            .write_all(format!("client {i} line {j}\n").as_bytes())
                            .unwrap();
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        got.push(line);
                    }
                    let long = vec![b'x'; 5000];
                    (&conn).write_all(&long).unwrap();
                    (&conn).write_all(b"\nafter\n").unwrap();
                    for _ in 0..2 {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        got.push(line);
                    }
                    got
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (i, got) in replies.iter().enumerate() {
        let mut want: Vec<String> = (0..5).map(|j| format!("CLIENT {i} LINE {j}\n")).collect();
        want.push("error: line too long\n".into());
        want.push("AFTER\n".into());
        assert_eq!(got, &want);
    }
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit().success(), "stderr:\n{}", ex.stderr());
}

#[test]
fn async_bridge_measure_reports_each_kind_of_call() {
    let (status, out, err) = util::run_example("async_bridge", &["--measure", "200"]);
    assert!(status.success(), "stderr:\n{err}");
    for kind in ["os thread ping", "tokio task", "tokio fetch"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(kind) && l.contains("us/call")),
            "no {kind:?} line in:\n{out}"
        );
    }
}

/// Panics when dropped, at the end of its green thread.
struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a green_local destructor panicked on purpose");
    }
}

greenio::green_local! {
    static BOMB: PanicOnDrop = PanicOnDrop;
    /// Values need not be Send: a green thread never leaves its hub.
    static SHARED_HERE: std::rc::Rc<Cell<u32>> = std::rc::Rc::new(Cell::new(0));
}

#[test]
fn green_local_destructor_panic_is_contained_and_values_need_not_be_send() {
    util::run("local destructor panic", || {
        let h = greenio::spawn(|| {
            BOMB.with(|_| ());
            let rc = SHARED_HERE.with(std::rc::Rc::clone);
            rc.set(3);
            SHARED_HERE.with(|v| v.get())
        });
        // The panic is logged; the green thread's own result stands.
        assert_eq!(h.join().unwrap(), 3);
        assert_eq!(greenio::spawn(|| 1).join().unwrap(), 1);
    });
}
