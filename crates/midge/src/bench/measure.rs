//! What `midge bench` counts: the payload that carries a send time and a sequence number, the
//! tally each subscriber keeps (latency histogram, losses, duplicates), and the figures the
//! report prints.
//!
//! Loss and duplication are found from sequence numbers alone: MQTT keeps each publisher's
//! messages in order to each subscriber, so a subscriber needs only the last number it saw per
//! publisher, not a set of every message.
//!
//! Throughput and latency count the messages *received* inside the measured window, whenever
//! they were sent: what the broker delivered while it was measured. (Counting by send time
//! instead reads zero when QoS 0 publishers flood a slower broker: the socket buffers then hold
//! seconds of messages sent during the warm-up, and nothing sent in the window arrives before
//! the run ends.)

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;

/// The fields at the start of every payload: send time (ns since the run's start), publisher,
/// sequence number.
pub(crate) const HEADER: usize = 24;

/// Payloads are cut from blocks of at least this many bytes: one allocation for many messages.
const BLOCK: usize = 32 * 1024;

/// Builds payloads of `size` bytes (at least [`HEADER`]).
#[derive(Debug, Clone)]
pub(crate) struct PayloadMaker {
    padding: Bytes,
    /// Room for the next payloads; each is split off it, sharing its allocation.
    block: BytesMut,
}

impl PayloadMaker {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            padding: Bytes::from(vec![b'm'; size.saturating_sub(HEADER)]),
            block: BytesMut::new(),
        }
    }

    /// A payload sent `sent` after the run's start.
    pub(crate) fn make(&mut self, sent: Duration, publisher: u64, sequence: u64) -> Bytes {
        let size = HEADER + self.padding.len();
        if self.block.capacity() < size {
            self.block = BytesMut::with_capacity(size.max(BLOCK));
        }
        self.block.put_u64(sent.as_nanos() as u64);
        self.block.put_u64(publisher);
        self.block.put_u64(sequence);
        self.block.extend_from_slice(&self.padding);
        self.block.split().freeze()
    }
}

/// A payload's header, if it has one.
pub(crate) fn read_header(payload: &[u8]) -> Option<(u64, u64, u64)> {
    let field =
        |at: usize| -> Option<u64> { Some(u64::from_be_bytes(payload.get(at..at + 8)?.try_into().ok()?)) };
    Some((field(0)?, field(8)?, field(16)?))
}

/// A histogram of microseconds, 1 µs to 100 s, three significant figures, growing past
/// 100 s if it must.
pub(crate) fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 100_000_000, 3) {
        Ok(mut histogram) => {
            histogram.auto(true);
            histogram
        }
        // The bounds are constants that hdrhistogram accepts; this is unreachable in practice.
        Err(_) => Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid")),
    }
}

/// The latency in microseconds (at least 1) of a message received `received_at` after the
/// run's start, whose payload says it was sent `sent` nanoseconds after it.
pub(crate) fn latency(sent: u64, received_at: Duration) -> u64 {
    (received_at.saturating_sub(Duration::from_nanos(sent)).as_micros() as u64).max(1)
}

/// One subscriber's (or all subscribers', once merged) view of what arrived.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Latency of the messages received inside the measured window, in microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Messages received inside the measured window.
    pub(crate) received_in_window: u64,
    /// Every message received.
    pub(crate) received: u64,
    /// Messages skipped in a publisher's sequence.
    pub(crate) lost: u64,
    /// Messages received again (or out of order).
    pub(crate) duplicated: u64,
    /// Payloads without a bench header (someone else's messages).
    pub(crate) foreign: u64,
    /// The last sequence number seen from each publisher, by publisher number (they are small
    /// and dense: 1 to the number of publishers; 0 means none seen yet)...
    last: Vec<u64>,
    /// ... and from publishers whose numbers are not (someone else's bench).
    last_elsewhere: HashMap<u64, u64>,
}

/// Publisher numbers below this are tallied in a vector, the others in a map.
const DENSE_PUBLISHERS: u64 = 1 << 16;

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            // 1 µs to 100 s, 3 significant figures.
            latency: new_histogram(),
            received_in_window: 0,
            received: 0,
            lost: 0,
            duplicated: 0,
            foreign: 0,
            last: Vec::new(),
            last_elsewhere: HashMap::new(),
        }
    }

    /// Counts one message received `received_at` after the run's start; `window` is the
    /// measured span, in which it counts toward throughput and latency.
    pub(crate) fn record(&mut self, payload: &[u8], received_at: Duration, window: (Duration, Duration)) {
        let Some((sent, publisher, sequence)) = read_header(payload) else {
            self.foreign += 1;
            return;
        };
        self.received += 1;
        let last = if publisher < DENSE_PUBLISHERS {
            let index = publisher as usize;
            if index >= self.last.len() {
                self.last.resize(index + 1, 0);
            }
            &mut self.last[index]
        } else {
            self.last_elsewhere.entry(publisher).or_insert(0)
        };
        // Sequences start at 1: anything before the first one seen was lost.
        if sequence <= *last {
            self.duplicated += 1;
        } else {
            self.lost += sequence - *last - 1;
            *last = sequence;
        }
        if received_at >= window.0 && received_at < window.1 {
            self.received_in_window += 1;
            let _ = self.latency.record(latency(sent, received_at));
        }
    }

    /// The highest sequence seen from `publisher` (0 for none), to find messages lost at the end
    /// of the run.
    pub(crate) fn last_sequence(&self, publisher: u64) -> u64 {
        match self.last.get(publisher as usize) {
            Some(&last) if publisher < DENSE_PUBLISHERS => last,
            _ => self.last_elsewhere.get(&publisher).copied().unwrap_or(0),
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        let _ = self.latency.add(&other.latency);
        self.received_in_window += other.received_in_window;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.foreign += other.foreign;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn losses_and_duplicates_are_found_from_sequence_numbers() {
        let start = Instant::now();
        let mut maker = PayloadMaker::new(64);
        let window = (Duration::ZERO, Duration::from_secs(3600));
        let mut tally = Tally::new();
        for sequence in [1, 2, 4, 4, 5, 9] {
            let payload = maker.make(Instant::now().duration_since(start), 7, sequence);
            assert_eq!(payload.len(), 64);
            tally.record(&payload, start.elapsed(), window);
        }
        tally.record(&maker.make(Duration::ZERO, 8, 3), start.elapsed(), window);
        tally.record(b"not ours", start.elapsed(), window);
        assert_eq!(tally.received, 7);
        assert_eq!(tally.lost, 1 + 3 + 2, "3; 6, 7, 8; and publisher 8's 1 and 2");
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.foreign, 1);
        assert_eq!(tally.received_in_window, 7);
        assert_eq!(tally.latency.len(), 7);
        assert_eq!(tally.last_sequence(7), 9);
        assert_eq!(tally.last_sequence(8), 3);
        assert_eq!(tally.last_sequence(1), 0);
    }

    #[test]
    fn publishers_numbered_beyond_the_dense_range_are_tallied_too() {
        let mut maker = PayloadMaker::new(24);
        let window = (Duration::ZERO, Duration::from_secs(3600));
        let mut tally = Tally::new();
        let far = DENSE_PUBLISHERS + 5;
        for sequence in [1, 3, 3] {
            tally.record(
                &maker.make(Duration::ZERO, far, sequence),
                Duration::from_millis(1),
                window,
            );
        }
        assert_eq!((tally.received, tally.lost, tally.duplicated), (3, 1, 1));
        assert_eq!(tally.last_sequence(far), 3);
    }

    #[test]
    fn payloads_cut_from_one_block_keep_their_own_contents() {
        let mut maker = PayloadMaker::new(100);
        let payloads: Vec<Bytes> = (1..=1000)
            .map(|sequence| maker.make(Duration::from_nanos(sequence * 10), 2, sequence))
            .collect();
        for (sequence, payload) in (1..=1000).zip(&payloads) {
            assert_eq!(payload.len(), 100);
            assert_eq!(read_header(payload), Some((sequence * 10, 2, sequence)));
            assert!(payload[HEADER..].iter().all(|&b| b == b'm'));
        }
    }

    #[test]
    fn throughput_and_latency_count_what_arrives_inside_the_window_whenever_it_was_sent() {
        let mut maker = PayloadMaker::new(64);
        let window = (Duration::from_secs(1), Duration::from_secs(3));
        let mut tally = Tally::new();
        // Sent during the warm-up, received in the window (a backlog): counted, 1.5 s late.
        let early = maker.make(Duration::from_millis(500), 1, 1);
        tally.record(&early, Duration::from_secs(2), window);
        // Sent in the window, received after it: not counted.
        let late = maker.make(Duration::from_millis(2900), 1, 2);
        tally.record(&late, Duration::from_millis(3100), window);
        // Received before the window: not counted.
        let warm = maker.make(Duration::from_millis(100), 2, 1);
        tally.record(&warm, Duration::from_millis(200), window);
        assert_eq!((tally.received, tally.received_in_window), (3, 1));
        assert_eq!(tally.latency.len(), 1);
        assert!(
            (1_499_000..=1_501_000).contains(&tally.latency.max()),
            "{}",
            tally.latency.max()
        );
    }

    #[test]
    fn latency_is_at_least_one_microsecond() {
        let now = Duration::from_millis(5);
        assert_eq!(latency(2_000_000, now), 3000);
        // A send time after the receipt (clock trouble) is 1 µs, never negative.
        assert_eq!(latency(9_000_000, now), 1);
    }
}
