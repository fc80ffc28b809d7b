//! Green-thread stacks: a per-hub pool, guard pages, and the stack-overflow
//! report.
//!
//! # Layout and cost
//!
//! Every stack is `size` usable bytes above one guard page. Stacks of the
//! hub's default size are carved out of *batches*: one `mmap` of
//! [`BATCH`] stacks at a time (`MAP_NORESERVE`: address space, not
//! memory), whose guard pages are then installed one by one. On Linux 6.13
//! and later a guard is a `MADV_GUARD_INSTALL` marker in the page tables,
//! which does not split the mapping: a batch of 16 stacks is one kernel
//! mapping (VMA) instead of 32, so `vm.max_map_count` (65530 by default)
//! no longer caps the number of green threads, and a cold spawn costs one
//! `madvise` plus the first page fault instead of `mmap` + `mprotect` (+
//! `munmap` at exit). On older kernels the guard falls back to
//! `mprotect(PROT_NONE)`, which splits the mapping: two mappings per stack,
//! about 32,000 live green threads under the default limit (raise it with
//! `sysctl vm.max_map_count=262144`); when the limit is hit, spawning fails
//! with an `io::Error` that says so. Stacks of other sizes are mapped one
//! by one. Batches are marked `MADV_NOHUGEPAGE`: a batch spans more than
//! 2 MiB, and with transparent huge pages set to `always` a first touch
//! would otherwise commit one huge page across the tops of many stacks. Memory is reserved, not committed: a stack costs RSS only for
//! the pages its green thread actually touched.
//!
//! Rejected: one `mmap` per stack (what corosensei's `DefaultStack` does):
//! three syscalls per stack over its life and two mappings each; and
//! stacks without guard pages (Go's growable stacks need compiler support;
//! an unguarded overflow silently corrupts a neighbour).
//!
//! # Default size
//!
//! [`DEFAULT_STACK_SIZE`] is 128 KiB. Rust code keeps buffers and `fmt`
//! machinery on the stack, `log` and `std::io` paths use a few KiB, and
//! DNS, TLS or regex code can reach tens of KiB. 128 KiB leaves a wide margin
//! for that while the address-space reservation for 10,000 green threads is
//! only 1.3 GB and the RSS stays what the code touches (8-12 KiB for an echo
//! handler). Use [`Builder::stack_size`](crate::Builder::stack_size) for
//! deep recursion.
//!
//! # Pooling
//!
//! A finished green thread's stack goes back to its hub's pool, so spawning
//! in steady state makes no syscall. Pages a previous green thread touched
//! stay committed for the first `POOL_MAX` (4096) pooled stacks; beyond
//! that, a returned stack's pages are given back with
//! `madvise(MADV_DONTNEED)` (a batch keeps its address space until the hub
//! ends), so memory follows the live green threads, not the peak.
//!
//! # High-water marks
//!
//! [`dump`](crate::dump) shows, per green thread, how much of its stack has
//! been touched, and [`stats`](crate::stats) the most seen on the hub, so a
//! `stack_size` can be chosen from evidence: `touched` asks the kernel
//! which of the stack's pages are resident (`mincore`), on demand, never on
//! a switch.
//!
//! # Overflow
//!
//! Touching the guard page raises `SIGSEGV`. A handler, installed once per
//! process on the signal alternate stack, checks whether the faulting
//! address lies in the guard page of the green thread running on this
//! thread; if so it writes
//! `greenio: green thread 'NAME' (id N), spawned at FILE:LINE, overflowed
//! its stack of S bytes`
//! to stderr and aborts. Any other fault is passed on to the handler that
//! was installed before (Rust's own, which reports main-thread overflows),
//! so unrelated crashes look as they always did.

use std::cell::Cell;
use std::io;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};

use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

/// The default usable stack size of a green thread: 128 KiB.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// How many stacks of the default size a hub keeps for reuse.
pub(crate) const POOL_MAX: usize = 4096;

/// Stacks of the default size mapped by one `mmap`.
pub(crate) const BATCH: usize = 16;

/// `madvise` advice that installs a guard marker (Linux 6.13+).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Whether `MADV_GUARD_INSTALL` works here: 0 unknown, 1 yes, 2 no.
static GUARD_REGIONS: AtomicU8 = AtomicU8::new(0);

/// Makes the page at `addr` a guard page.
fn install_guard(addr: *mut u8, page: usize) -> io::Result<()> {
    if GUARD_REGIONS.load(Ordering::Relaxed) != 2 {
        // SAFETY: `addr` is a page of a private anonymous mapping we own
        // and nothing uses yet; a guard marker only makes it fault.
        match syscall!(unsafe { libc::madvise(addr.cast(), page, MADV_GUARD_INSTALL) }) {
            Ok(_) => {
                GUARD_REGIONS.store(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                GUARD_REGIONS.store(2, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    // SAFETY: as above; PROT_NONE only makes the page fault.
    syscall!(unsafe { libc::mprotect(addr.cast(), page, libc::PROT_NONE) }).map(drop)
}

/// Maps `len` bytes of private, unreserved, writable address space.
fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous mapping at an address of the kernel's choice;
    // the result is checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// One `mmap` region; unmapped when the last stack in it is dropped.
struct Region {
    addr: *mut u8,
    len: usize,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `map` with this length, and every
        // stack carved from it holds an `Rc` to it, so none is in use.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// A green thread's stack: `[limit, limit + page)` is the guard, the rest
/// up to `base` is usable. Lives on its hub's thread only.
pub(crate) struct GreenStack {
    base: StackPointer,
    limit: StackPointer,
    _region: Rc<Region>,
    valgrind: ManuallyDrop<ValgrindStackRegistration>,
}

impl GreenStack {
    /// Carves the stack at `[lo, lo + page + size)` out of `region`, whose
    /// guard page is already installed.
    fn carve(region: &Rc<Region>, lo: usize, size: usize, page: usize) -> GreenStack {
        let len = page + size;
        GreenStack {
            base: StackPointer::new(lo + len).expect("mapped address is non-zero"),
            limit: StackPointer::new(lo).expect("mapped address is non-zero"),
            _region: region.clone(),
            valgrind: ManuallyDrop::new(ValgrindStackRegistration::new(lo as *mut u8, len)),
        }
    }

    /// Usable bytes.
    fn size(&self) -> usize {
        self.base.get() - self.limit.get() - page_size()
    }

    /// Gives the usable pages back to the kernel (they read as zero later).
    fn release_pages(&self) {
        let page = page_size();
        // SAFETY: the usable range belongs to this stack, which no green
        // thread runs on (it is being pooled).
        unsafe {
            libc::madvise(
                (self.limit.get() + page) as *mut libc::c_void,
                self.size(),
                libc::MADV_DONTNEED,
            )
        };
    }
}

impl Drop for GreenStack {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.valgrind) };
    }
}

// SAFETY: `base` and `limit` bound memory owned by this stack (kept mapped
// by `_region`), aligned to pages (so to STACK_ALIGNMENT), at least
// MIN_STACK_SIZE usable bytes (sizes are rounded up to 16 KiB), with a
// guard page at `limit` installed before the stack is handed out.
unsafe impl Stack for GreenStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.limit
    }
}

/// A pool of stacks of one size.
pub(crate) struct StackPool {
    size: usize,
    free: Vec<GreenStack>,
    /// Stacks of the current batch not handed out yet: their guards are
    /// installed lazily, as each is first used.
    fresh: Vec<(Rc<Region>, usize)>,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            size: round_to_page(size),
            free: Vec::new(),
            fresh: Vec::new(),
        }
    }

    pub(crate) fn default_size(&self) -> usize {
        self.size
    }

    /// A stack of at least `size` bytes (the pool's size if `None`).
    pub(crate) fn get(&mut self, size: Option<usize>) -> io::Result<GreenStack> {
        let size = size.map(round_to_page).unwrap_or(self.size);
        let r = if size == self.size {
            if let Some(s) = self.free.pop() {
                return Ok(s);
            }
            self.next_in_batch()
        } else {
            Self::single(size)
        };
        r.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "greenio: cannot map a {size}-byte green-thread stack: {e} \
                     (check vm.max_map_count, which caps memory mappings, \
                     and available address space)"
                ),
            )
        })
    }

    /// The next stack of the current batch, mapping a new batch if needed.
    fn next_in_batch(&mut self) -> io::Result<GreenStack> {
        let page = page_size();
        let stride = page + self.size;
        if self.fresh.is_empty() {
            let len = stride
                .checked_mul(BATCH)
                .ok_or(io::ErrorKind::InvalidInput)?;
            let region = Rc::new(Region {
                addr: map(len)?,
                len,
            });
            // A batch spans more than 2 MiB (and batches mapped back to back
            // merge): with transparent huge pages set to `always`, the first
            // touch of a stack could commit a 2 MiB page covering the tops
            // of many stacks. Stacks want small pages; an error only means
            // the kernel has no THP.
            // SAFETY: advice on the mapping just made, which nothing uses yet.
            let _ = unsafe { libc::madvise(region.addr.cast(), len, libc::MADV_NOHUGEPAGE) };
            let lo = region.addr as usize;
            // Hand out from the low end first (the order does not matter).
            self.fresh
                .extend((0..BATCH).rev().map(|i| (region.clone(), lo + i * stride)));
        }
        let (region, lo) = self.fresh.pop().expect("refilled above");
        if let Err(e) = install_guard(lo as *mut u8, page) {
            self.fresh.push((region, lo));
            return Err(e);
        }
        Ok(GreenStack::carve(&region, lo, self.size, page))
    }

    /// A stack of a size other than the pool's, mapped on its own.
    fn single(size: usize) -> io::Result<GreenStack> {
        let page = page_size();
        let len = size.checked_add(page).ok_or(io::ErrorKind::InvalidInput)?;
        let region = Rc::new(Region {
            addr: map(len)?,
            len,
        });
        install_guard(region.addr, page)?;
        let lo = region.addr as usize;
        Ok(GreenStack::carve(&region, lo, size, page))
    }

    /// Whether `get(size)` would be served without a syscall-heavy map.
    pub(crate) fn has_free(&self, size: Option<usize>) -> bool {
        !self.free.is_empty() && size.is_none_or(|s| round_to_page(s) == self.size)
    }

    /// Returns a stack to the pool (stacks of other sizes are unmapped).
    pub(crate) fn put(&mut self, stack: GreenStack) {
        if stack.size() != self.size {
            return;
        }
        if self.free.len() >= POOL_MAX {
            stack.release_pages();
        }
        self.free.push(stack);
    }

    pub(crate) fn pooled(&self) -> usize {
        self.free.len()
    }

    /// The most any of the last `SCAN_POOLED` pooled stacks has been
    /// touched, in bytes (a pooled stack keeps the pages its earlier green
    /// threads touched). Bounded, so `stats` stays cheap after a burst that
    /// pooled 100,000 stacks; the hub's high-water mark remembers what
    /// earlier calls saw.
    pub(crate) fn max_touched(&self) -> usize {
        const SCAN_POOLED: usize = 1024;
        let page = page_size();
        self.free
            .iter()
            .rev()
            .take(SCAN_POOLED)
            .filter_map(|st| {
                let lo = st.limit().get() + page;
                touched(lo, st.base().get() - lo)
            })
            .max()
            .unwrap_or(0)
    }
}

/// How much of the usable stack `lo..lo + size` has been touched, in
/// bytes: from the top down to the lowest page resident in memory
/// (`mincore`). Stacks grow down and every frame is probed page by page,
/// so the resident pages are the ones used. Cost: one system call and a
/// byte per page, on demand only. `None` if `mincore` fails.
///
/// Pages stay resident after use (the pool gives them back only for stacks
/// beyond its first `POOL_MAX`), so this is a high-water mark: of the green
/// thread, and of earlier ones that used the same pooled stack. A page
/// swapped out reads as untouched.
pub(crate) fn touched(lo: usize, size: usize) -> Option<usize> {
    let page = page_size();
    let mut resident = vec![0u8; size / page];
    // SAFETY: `lo..lo + size` is the usable part of a stack mapping that
    // the caller keeps alive, page-aligned (stacks are mmapped);
    // `resident` has one byte per page of it.
    let r = unsafe { libc::mincore(lo as *mut libc::c_void, size, resident.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    let lowest = resident
        .iter()
        .position(|b| b & 1 != 0)
        .unwrap_or(resident.len());
    Some(size - lowest * page)
}

pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = PAGE.load(std::sync::atomic::Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p <= 0 { 4096 } else { p as usize };
    PAGE.store(p, std::sync::atomic::Ordering::Relaxed);
    p
}

fn round_to_page(n: usize) -> usize {
    let p = page_size();
    n.max(16 * 1024).div_ceil(p) * p
}

/// The running green thread's stack, as the signal handler needs it. Plain
/// integers and a raw name pointer: the handler may not allocate or lock.
#[derive(Clone, Copy)]
pub(crate) struct StackInfo {
    /// Lowest address of the guard page.
    pub(crate) guard_lo: usize,
    /// One past the guard page.
    pub(crate) guard_hi: usize,
    /// Usable size in bytes.
    pub(crate) size: usize,
    pub(crate) id: u64,
    /// Name bytes (owned by the green thread's header, alive while it runs).
    pub(crate) name: *const u8,
    pub(crate) name_len: usize,
    /// The spawn site's file name (static bytes) and line, for the report.
    pub(crate) site_file: &'static [u8],
    pub(crate) site_line: u32,
}

impl StackInfo {
    pub(crate) const NONE: StackInfo = StackInfo {
        guard_lo: 0,
        guard_hi: 0,
        size: 0,
        id: 0,
        name: std::ptr::null(),
        name_len: 0,
        site_file: b"",
        site_line: 0,
    };

    pub(crate) fn of(
        stack: &GreenStack,
        id: u64,
        name: Option<&str>,
        site: &'static Location<'static>,
    ) -> StackInfo {
        let lo = stack.limit().get();
        let page = page_size();
        StackInfo {
            guard_lo: lo,
            guard_hi: lo + page,
            size: stack.base().get() - lo - page,
            id,
            name: name.map_or(std::ptr::null(), str::as_ptr),
            name_len: name.map_or(0, str::len),
            site_file: site.file().as_bytes(),
            site_line: site.line(),
        }
    }

    /// Bytes of this stack touched so far (see [`touched`]); `None` for a
    /// green thread that has no stack yet.
    pub(crate) fn touched(&self) -> Option<usize> {
        if self.guard_hi == 0 {
            return None;
        }
        touched(self.guard_hi, self.size)
    }
}

thread_local! {
    /// The stack of the green thread running on this OS thread, if any
    /// (points into the hub's slot, valid while the green thread runs).
    static RUNNING: Cell<*const StackInfo> = const { Cell::new(std::ptr::null()) };
}

/// Records which green thread runs now (called by the hub on each switch).
#[inline]
pub(crate) fn set_running(info: *const StackInfo) {
    RUNNING.with(|r| r.set(info));
}

static INSTALL: Once = Once::new();
/// The dispositions SIGSEGV and SIGBUS had before ours, set once by
/// `install_overflow_handler` before our handler can run, then only read
/// (a `OnceLock` read is an acquire load: async-signal-safe).
static PREV_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the overflow handler once per process and makes sure this
/// thread has an alternate signal stack.
pub(crate) fn install_overflow_handler() {
    INSTALL.call_once(|| {
        for (sig, prev) in [(libc::SIGSEGV, &PREV_SEGV), (libc::SIGBUS, &PREV_BUS)] {
            // SAFETY: a zeroed sigaction is a valid "default" value; the
            // current disposition is read into it below.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: querying the current disposition with a valid
            // out-pointer and no new action.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
                continue;
            }
            // Publish the previous action before ours can run.
            let _ = prev.set(old);
            // SAFETY: as above, zeroed then filled in.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `sa` and its mask are valid; the handler has the
            // SA_SIGINFO signature.
            unsafe {
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
    ensure_altstack();
}

thread_local! {
    static ALTSTACK: Cell<bool> = const { Cell::new(false) };
}

/// Rust's runtime gives every thread it starts an alternate signal stack;
/// threads started elsewhere may lack one, so add one if missing (leaked
/// with the thread: 64 KiB of address space).
fn ensure_altstack() {
    if ALTSTACK.with(Cell::get) {
        return;
    }
    ALTSTACK.with(|a| a.set(true));
    // SAFETY: querying the current alternate stack with a valid out-pointer.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } != 0 {
        return;
    }
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let size = 64 * 1024;
    // SAFETY: anonymous private mapping, checked for failure below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return;
    }
    let st = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` describes the mapping made above, which is never unmapped.
    unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) };
}

/// The SIGSEGV/SIGBUS handler. Async-signal-safe: reads a thread-local
/// `Cell` of plain integers, formats into a stack buffer, `write`s, aborts.
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let ptr = RUNNING.try_with(Cell::get).unwrap_or(std::ptr::null());
    let run = if ptr.is_null() {
        StackInfo::NONE
    } else {
        // SAFETY: the pointer is set by the hub to the running green
        // thread's slot and cleared when it suspends; the slot outlives it.
        unsafe { *ptr }
    };
    if run.guard_hi != 0 && addr >= run.guard_lo && addr < run.guard_hi {
        let mut buf = [0u8; 512];
        let mut w = BufWriter {
            buf: &mut buf,
            len: 0,
        };
        w.put(b"greenio: green thread '");
        if run.name.is_null() {
            w.put(b"<unnamed>");
        } else {
            // SAFETY: the name is owned by the running green thread's header,
            // which lives at least as long as the green thread runs.
            w.put(unsafe { std::slice::from_raw_parts(run.name, run.name_len) });
        }
        w.put(b"' (id ");
        w.num(run.id);
        w.put(b"), spawned at ");
        w.put(run.site_file);
        w.put(b":");
        w.num(u64::from(run.site_line));
        w.put(b", overflowed its stack of ");
        w.num(run.size as u64);
        w.put(
            b" bytes; give it more with greenio::Builder::stack_size or \
            Runtime::builder().stack_size(). Aborting.\n",
        );
        // SAFETY: writing an initialised buffer to fd 2; abort never returns.
        unsafe {
            libc::write(2, w.buf.as_ptr().cast(), w.len);
            libc::abort();
        }
    }
    // Not ours: hand over to the previous handler.
    let prev = if sig == libc::SIGBUS {
        PREV_BUS.get()
    } else {
        PREV_SEGV.get()
    };
    match prev {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as an
                // SA_SIGINFO handler with this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a plain
                // one-argument handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Restore the default action and return: the faulting
            // instruction runs again and the process dies as it would have.
            // SAFETY: resetting a signal to SIG_DFL with a zeroed struct.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
}

struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl BufWriter<'_> {
    fn put(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn num(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let d = digits;
        self.put(&d[i..]);
    }
}
