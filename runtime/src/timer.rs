//! Timers of one hub: sleeps, wait deadlines and timeout scopes.
//!
//! Generic over what a timer does when it fires (`A`): the hub loop
//! decides that, this file only orders deadlines.
//!
//! A binary min-heap of `(deadline, insertion number, key)` plus a slab of
//! live entries. Cancelling removes the slab entry in O(1) and leaves the
//! heap entry behind as a tombstone, skipped when it reaches the top; when
//! tombstones outnumber live timers the heap is rebuilt (amortised O(1) per
//! cancel), so memory stays proportional to the live timers.
//!
//! Rejected: a hashed timing wheel. It wins with millions of timers at
//! coarse resolution, but costs a tick walk while idle and rounds deadlines;
//! a hub has at most one timer per parked green thread, where a heap is
//! exact and cheap. Rejected too: removing from the heap by position (an
//! indexed heap) — every sift would have to update back-pointers in the
//! slab, which slows the common insert/cancel pair.
//!
//! Equal deadlines fire in insertion order, so `sleep(d)` in two green
//! threads wakes them in the order they slept.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A handle to cancel a timer: slab index plus the insertion number, so a
/// key outliving its timer can never cancel the slot's next occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    seq: u64,
}

struct Entry<A> {
    seq: u64,
    action: A,
}

pub(crate) struct Timers<A> {
    /// Min-heap on (deadline, seq); entries whose slab slot no longer holds
    /// the same seq are tombstones.
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    /// Live timers; `None` slots are on the free list.
    entries: Vec<Option<Entry<A>>>,
    free: Vec<u32>,
    live: usize,
    next_seq: u64,
}

impl<A> Default for Timers<A> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_seq: 0,
        }
    }
}

impl<A> Timers<A> {
    /// Number of live (not cancelled, not fired) timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn insert(&mut self, deadline: Instant, action: A) -> TimerKey {
        self.next_seq += 1;
        let seq = self.next_seq;
        let entry = Some(Entry { seq, action });
        let index = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((deadline, seq, index)));
        self.live += 1;
        TimerKey { index, seq }
    }

    /// Cancels a timer; does nothing if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        let slot = &mut self.entries[key.index as usize];
        if slot.as_ref().is_some_and(|e| e.seq == key.seq) {
            *slot = None;
            self.free.push(key.index);
            self.live -= 1;
            if self.heap.len() > 64 && self.heap.len() > 4 * self.live {
                self.compact();
            }
        }
    }

    fn compact(&mut self) {
        let entries = &self.entries;
        let old = std::mem::take(&mut self.heap).into_vec();
        self.heap = old
            .into_iter()
            .filter(|Reverse((_, seq, i))| {
                entries[*i as usize].as_ref().is_some_and(|e| e.seq == *seq)
            })
            .collect();
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((d, seq, i))) = self.heap.peek() {
            if self.entries[*i as usize]
                .as_ref()
                .is_some_and(|e| e.seq == *seq)
            {
                return Some(*d);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the action of the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<A> {
        loop {
            let Reverse((d, seq, i)) = *self.heap.peek()?;
            let live = self.entries[i as usize]
                .as_ref()
                .is_some_and(|e| e.seq == seq);
            if !live {
                self.heap.pop();
                continue;
            }
            if d > now {
                return None;
            }
            self.heap.pop();
            let e = self.entries[i as usize].take()?;
            self.free.push(i);
            self.live -= 1;
            return Some(e.action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scope(n: u64) -> u64 {
        n
    }

    fn scope_of(a: u64) -> u64 {
        a
    }

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut t = Timers::<u64>::default();
        let now = Instant::now();
        t.insert(now + Duration::from_millis(20), scope(3));
        t.insert(now + Duration::from_millis(10), scope(1));
        t.insert(now + Duration::from_millis(10), scope(2));
        let later = now + Duration::from_millis(30);
        let order: Vec<u64> = std::iter::from_fn(|| t.pop_due(later))
            .map(scope_of)
            .collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn cancel_is_exact_and_keys_do_not_alias() {
        let mut t = Timers::<u64>::default();
        let now = Instant::now();
        let a = t.insert(now, scope(1));
        t.cancel(a);
        let b = t.insert(now, scope(2)); // reuses the slab slot
        t.cancel(a); // stale key: must not cancel b
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(now).map(scope_of), Some(2));
        t.cancel(b); // already fired: no-op
        assert_eq!(t.len(), 0);
        assert!(t.next_deadline().is_none());
    }

    #[test]
    fn tombstones_are_compacted() {
        let mut t = Timers::<u64>::default();
        let now = Instant::now();
        for _ in 0..10_000 {
            let k = t.insert(now + Duration::from_secs(60), scope(0));
            t.cancel(k);
        }
        assert_eq!(t.len(), 0);
        assert!(t.heap.len() <= 64, "heap kept {} tombstones", t.heap.len());
    }
}
