//! Which records of one partition may run now, and how far the partition may
//! be committed. Pure bookkeeping, no I/O: the consumer runtime feeds it
//! records as they are fetched and tells it when each one is finished.
//!
//! The rules:
//! - at most `max_in_flight` records run at once;
//! - records that share an ordering key run one at a time, in offset order;
//! - the commit position is the lowest offset not yet finished, so a commit
//!   never passes a record that is still running, waiting or abandoned.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// How records of one partition may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Records with the same key run in offset order, one at a time; different
    /// keys run concurrently, up to `max_in_flight`. Records without a key
    /// share one ordering slot, since their producer gave them no other order.
    KeyOrdered { max_in_flight: usize },
    /// One record at a time per partition, the classic consumer.
    Partition,
    /// Any record may run beside any other, up to `max_in_flight`.
    Unordered { max_in_flight: usize },
}

impl Ordering {
    pub fn max_in_flight(self) -> usize {
        match self {
            Self::KeyOrdered { max_in_flight } | Self::Unordered { max_in_flight } => {
                max_in_flight.max(1)
            }
            Self::Partition => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Key(Vec<u8>),
    NoKey,
    Whole,
    Offset(i64),
}

#[derive(Debug)]
pub struct PartitionScheduler<T> {
    ordering: Ordering,
    max_in_flight: usize,
    /// Accepted, not yet finished: running, waiting, or abandoned.
    unfinished: BTreeSet<i64>,
    /// The offset after the highest one accepted.
    next_offset: Option<i64>,
    /// A slot present here is owned by one record, running or in `ready`; the
    /// queue holds that slot's later records in offset order.
    slots: HashMap<Slot, VecDeque<(i64, T)>>,
    /// Records whose slot is theirs but who wait for a free place to run.
    ready: VecDeque<(i64, Slot, T)>,
    running: HashMap<i64, Slot>,
    closed: bool,
}

impl<T> PartitionScheduler<T> {
    pub fn new(ordering: Ordering) -> Self {
        Self {
            ordering,
            max_in_flight: ordering.max_in_flight(),
            unfinished: BTreeSet::new(),
            next_offset: None,
            slots: HashMap::new(),
            ready: VecDeque::new(),
            running: HashMap::new(),
            closed: false,
        }
    }

    /// Takes a fetched record; returns the records that may start now.
    pub fn accept(&mut self, offset: i64, key: Option<Vec<u8>>, item: T) -> Vec<(i64, T)> {
        if self.closed || self.next_offset.is_some_and(|next| offset < next) {
            // Closed: the partition is being handed over. Below `next_offset`: a
            // re-fetch after a pause or seek of a record already held.
            return Vec::new();
        }
        self.unfinished.insert(offset);
        self.next_offset = Some(offset + 1);
        let slot = self.slot_of(offset, key);
        match self.slots.get_mut(&slot) {
            Some(queue) => queue.push_back((offset, item)),
            None => {
                self.slots.insert(slot.clone(), VecDeque::new());
                self.ready.push_back((offset, slot, item));
            }
        }
        self.start_ready()
    }

    /// Marks a running record finished (handled or dead-lettered); returns
    /// the records that may start now.
    pub fn finish(&mut self, offset: i64) -> Vec<(i64, T)> {
        let Some(slot) = self.running.remove(&offset) else {
            return Vec::new();
        };
        self.unfinished.remove(&offset);
        let next = self.slots.get_mut(&slot).and_then(VecDeque::pop_front);
        match next {
            // The slot passes to its next record, which queues behind records
            // that were already waiting for a place, so no key starves others.
            Some((next_offset, item)) => self.ready.push_back((next_offset, slot, item)),
            None => {
                self.slots.remove(&slot);
            }
        }
        self.start_ready()
    }

    /// Gives up a running record without finishing it: it stays unfinished,
    /// so the commit position cannot pass it and it will be fetched again.
    pub fn abandon(&mut self, offset: i64) {
        self.running.remove(&offset);
    }

    /// Stops starting records; used when the partition is being revoked or
    /// the consumer is shutting down. Waiting records are dropped (they are
    /// unfinished, so they will be read again from the committed position).
    pub fn close(&mut self) {
        self.closed = true;
        self.ready.clear();
        self.slots.clear();
    }

    /// The offset to commit: the next record to read on restart.
    pub fn commit_position(&self) -> Option<i64> {
        self.unfinished.first().copied().or(self.next_offset)
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Records accepted and not finished (running, waiting, or abandoned).
    pub fn buffered(&self) -> usize {
        self.unfinished.len()
    }

    fn start_ready(&mut self) -> Vec<(i64, T)> {
        let mut started = Vec::new();
        while self.running.len() < self.max_in_flight && !self.closed {
            let Some((offset, slot, item)) = self.ready.pop_front() else {
                break;
            };
            self.running.insert(offset, slot);
            started.push((offset, item));
        }
        started
    }

    fn slot_of(&self, offset: i64, key: Option<Vec<u8>>) -> Slot {
        match (self.ordering, key) {
            (Ordering::KeyOrdered { .. }, Some(key)) => Slot::Key(key),
            (Ordering::KeyOrdered { .. }, None) => Slot::NoKey,
            (Ordering::Partition, _) => Slot::Whole,
            (Ordering::Unordered { .. }, _) => Slot::Offset(offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &[u8]) -> Option<Vec<u8>> {
        Some(key.to_vec())
    }

    fn offsets(started: Vec<(i64, ())>) -> Vec<i64> {
        started.into_iter().map(|(offset, ())| offset).collect()
    }

    #[test]
    fn one_key_runs_one_record_at_a_time_in_offset_order() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 10 });
        assert_eq!(offsets(s.accept(0, key(b"a"), ())), vec![0]);
        assert_eq!(offsets(s.accept(1, key(b"a"), ())), Vec::<i64>::new());
        assert_eq!(offsets(s.accept(2, key(b"b"), ())), vec![2]);
        assert_eq!(offsets(s.accept(3, key(b"a"), ())), Vec::<i64>::new());
        assert_eq!(offsets(s.finish(0)), vec![1]);
        assert_eq!(offsets(s.finish(1)), vec![3]);
    }

    #[test]
    fn commit_position_stops_at_the_lowest_unfinished_offset() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 10 });
        for offset in 0..4 {
            s.accept(offset, key(&[offset as u8]), ());
        }
        s.finish(1);
        s.finish(3);
        assert_eq!(s.commit_position(), Some(0));
        s.finish(0);
        assert_eq!(s.commit_position(), Some(2));
        s.finish(2);
        assert_eq!(s.commit_position(), Some(4));
    }

    #[test]
    fn the_in_flight_cap_holds_and_freed_places_go_to_the_longest_waiting() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 2 });
        assert_eq!(offsets(s.accept(0, key(b"a"), ())), vec![0]);
        assert_eq!(offsets(s.accept(1, key(b"a"), ())), Vec::<i64>::new());
        assert_eq!(offsets(s.accept(2, key(b"b"), ())), vec![2]);
        assert_eq!(offsets(s.accept(3, key(b"c"), ())), Vec::<i64>::new());
        assert_eq!(s.running(), 2);
        // "c" has waited for a place longer than "a"'s second record.
        assert_eq!(offsets(s.finish(0)), vec![3]);
        assert_eq!(offsets(s.finish(2)), vec![1]);
    }

    #[test]
    fn partition_ordering_runs_one_record_at_a_time() {
        let mut s = PartitionScheduler::new(Ordering::Partition);
        assert_eq!(offsets(s.accept(0, key(b"a"), ())), vec![0]);
        assert_eq!(offsets(s.accept(1, key(b"b"), ())), Vec::<i64>::new());
        assert_eq!(offsets(s.finish(0)), vec![1]);
    }

    #[test]
    fn unordered_runs_records_of_one_key_together() {
        let mut s = PartitionScheduler::new(Ordering::Unordered { max_in_flight: 3 });
        assert_eq!(offsets(s.accept(0, key(b"a"), ())), vec![0]);
        assert_eq!(offsets(s.accept(1, key(b"a"), ())), vec![1]);
    }

    #[test]
    fn records_without_a_key_keep_their_order() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 3 });
        assert_eq!(offsets(s.accept(0, None, ())), vec![0]);
        assert_eq!(offsets(s.accept(1, None, ())), Vec::<i64>::new());
    }

    #[test]
    fn an_abandoned_record_holds_back_the_commit_position() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 3 });
        s.accept(0, key(b"a"), ());
        s.accept(1, key(b"b"), ());
        s.close();
        s.abandon(0);
        s.finish(1);
        assert_eq!(s.running(), 0);
        assert_eq!(s.commit_position(), Some(0));
    }

    #[test]
    fn a_closed_scheduler_starts_nothing_and_drops_waiting_records() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 3 });
        s.accept(0, key(b"a"), ());
        s.accept(1, key(b"a"), ());
        s.close();
        assert_eq!(offsets(s.finish(0)), Vec::<i64>::new());
        assert_eq!(offsets(s.accept(2, key(b"b"), ())), Vec::<i64>::new());
        assert_eq!(s.commit_position(), Some(1));
    }

    #[test]
    fn a_refetched_record_is_not_accepted_twice() {
        let mut s = PartitionScheduler::new(Ordering::KeyOrdered { max_in_flight: 3 });
        s.accept(0, key(b"a"), ());
        assert_eq!(offsets(s.accept(0, key(b"b"), ())), Vec::<i64>::new());
        assert_eq!(s.buffered(), 1);
    }
}
