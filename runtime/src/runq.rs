//! The hub's FIFO of ready green threads: a growable ring of
//! `(slot, seq)` pairs with a power-of-two capacity. Hub-thread only; every
//! method is a handful of instructions, no borrow flags, no calls.

use std::cell::{Cell, UnsafeCell};

pub(crate) struct RunQueue {
    /// Ring storage; length is a power of two.
    buf: UnsafeCell<Box<[(u32, u64)]>>,
    /// Index of the first element (not wrapped).
    head: Cell<usize>,
    /// Number of elements.
    len: Cell<usize>,
}

impl RunQueue {
    pub(crate) fn new() -> RunQueue {
        RunQueue {
            buf: UnsafeCell::new(vec![(0, 0); 256].into_boxed_slice()),
            head: Cell::new(0),
            len: Cell::new(0),
        }
    }

    #[inline]
    pub(crate) fn push(&self, item: (u32, u64)) {
        // SAFETY: the queue is only used from the hub's thread and no
        // method hands out references into `buf`, so this is the only live
        // borrow.
        let buf = unsafe { &mut *self.buf.get() };
        let len = self.len.get();
        if len == buf.len() {
            self.grow();
            return self.push(item);
        }
        let mask = buf.len() - 1;
        buf[(self.head.get() + len) & mask] = item;
        self.len.set(len + 1);
    }

    #[cold]
    fn grow(&self) {
        // SAFETY: as in `push`.
        let buf = unsafe { &mut *self.buf.get() };
        let mut new = vec![(0, 0); buf.len() * 2].into_boxed_slice();
        let mask = buf.len() - 1;
        for (i, slot) in new.iter_mut().take(self.len.get()).enumerate() {
            *slot = buf[(self.head.get() + i) & mask];
        }
        *buf = new;
        self.head.set(0);
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<(u32, u64)> {
        let len = self.len.get();
        if len == 0 {
            return None;
        }
        // SAFETY: as in `push`.
        let buf = unsafe { &*self.buf.get() };
        let h = self.head.get();
        let item = buf[h & (buf.len() - 1)];
        self.head.set(h.wrapping_add(1));
        self.len.set(len - 1);
        Some(item)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;

    #[test]
    fn fifo_across_growth_and_wraparound() {
        let q = RunQueue::new();
        for i in 0..200 {
            q.push((i, i as u64));
        }
        for i in 0..150 {
            assert_eq!(q.pop(), Some((i, i as u64)));
        }
        for i in 200..1000 {
            q.push((i, i as u64));
        }
        for i in 150..1000 {
            assert_eq!(q.pop(), Some((i, i as u64)));
        }
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
