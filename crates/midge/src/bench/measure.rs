//! What `midge bench` counts: the payload that carries a send time and a sequence number, the
//! tally each subscriber keeps (latency histogram, losses, duplicates), and the figures the
//! report prints.
//!
//! Loss and duplication are found from sequence numbers alone: MQTT keeps each publisher's
//! messages in order to each subscriber, so a subscriber needs only the last number it saw per
//! publisher, not a set of every message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;

/// The fields at the start of every payload: send time (ns since the run's start), publisher,
/// sequence number.
pub(crate) const HEADER: usize = 24;

/// Builds payloads of `size` bytes (at least [`HEADER`]).
#[derive(Debug, Clone)]
pub(crate) struct PayloadMaker {
    padding: Bytes,
}

impl PayloadMaker {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            padding: Bytes::from(vec![b'm'; size.saturating_sub(HEADER)]),
        }
    }

    /// A payload sent `sent` after the run's start.
    pub(crate) fn make(&self, sent: Duration, publisher: u64, sequence: u64) -> Bytes {
        let mut payload = BytesMut::with_capacity(HEADER + self.padding.len());
        payload.put_u64(sent.as_nanos() as u64);
        payload.put_u64(publisher);
        payload.put_u64(sequence);
        payload.extend_from_slice(&self.padding);
        payload.freeze()
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

/// One subscriber's (or all subscribers', once merged) view of what arrived.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Latency of messages sent inside the measured window, in microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Messages received whose send time falls inside the measured window.
    pub(crate) received_in_window: u64,
    /// Every message received.
    pub(crate) received: u64,
    /// Messages skipped in a publisher's sequence.
    pub(crate) lost: u64,
    /// Messages received again (or out of order).
    pub(crate) duplicated: u64,
    /// Payloads without a bench header (someone else's messages).
    pub(crate) foreign: u64,
    last: HashMap<u64, u64>,
}

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
            last: HashMap::new(),
        }
    }

    /// Counts one message received at `now`; `window` is the measured span since the run's
    /// `start`.
    pub(crate) fn record(
        &mut self,
        payload: &[u8],
        start: Instant,
        now: Instant,
        window: (Duration, Duration),
    ) {
        let Some((sent, publisher, sequence)) = read_header(payload) else {
            self.foreign += 1;
            return;
        };
        self.received += 1;
        match self.last.get(&publisher) {
            Some(&last) if sequence <= last => self.duplicated += 1,
            Some(&last) => {
                self.lost += sequence - last - 1;
                self.last.insert(publisher, sequence);
            }
            None => {
                // Sequences start at 1: anything before the first one seen was lost.
                self.lost += sequence.saturating_sub(1);
                self.last.insert(publisher, sequence);
            }
        }
        let sent = Duration::from_nanos(sent);
        if sent >= window.0 && sent < window.1 {
            self.received_in_window += 1;
            let elapsed = now.duration_since(start).saturating_sub(sent);
            let _ = self.latency.record((elapsed.as_micros() as u64).max(1));
        }
    }

    /// The highest sequence seen per publisher, to find messages lost at the end of the run.
    pub(crate) fn last_sequences(&self) -> &HashMap<u64, u64> {
        &self.last
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
    use super::*;

    #[test]
    fn losses_and_duplicates_are_found_from_sequence_numbers() {
        let start = Instant::now();
        let maker = PayloadMaker::new(64);
        let window = (Duration::ZERO, Duration::from_secs(3600));
        let mut tally = Tally::new();
        for sequence in [1, 2, 4, 4, 5, 9] {
            let payload = maker.make(Instant::now().duration_since(start), 7, sequence);
            assert_eq!(payload.len(), 64);
            tally.record(&payload, start, Instant::now(), window);
        }
        tally.record(&maker.make(Duration::ZERO, 8, 3), start, Instant::now(), window);
        tally.record(b"not ours", start, Instant::now(), window);
        assert_eq!(tally.received, 7);
        assert_eq!(tally.lost, 1 + 3 + 2, "3; 6, 7, 8; and publisher 8's 1 and 2");
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.foreign, 1);
        assert_eq!(tally.received_in_window, 7);
        assert_eq!(tally.latency.len(), 7);
    }
}
