//! Topic index benchmarks: the subscription trie (`midge_core::topic_index`) beside a naive
//! matcher that tests every filter in turn (`midge_auth::topic_match::matches`, Mosquitto's
//! rule), at 10 thousand and 1 million subscriptions.
//!
//! The subscriptions look like a device fleet's: 100 regions of devices with 10 metrics each,
//! held by sessions of 100 subscriptions. Of the filters, 90 % are exact
//! (`fleet/r7/dev/1234/m3`), 5 % have a `+` for the device (`fleet/r7/dev/+/m3`), 4 % end in
//! `#` under a device (`fleet/r7/dev/1234/#`) and 1 % start with `+` (`+/r7/#`). Topics are
//! drawn from the same space, so most match a handful of filters.
//!
//! - `match/…`: every subscription matching one topic, collected as the broker does on each
//!   PUBLISH (`trie`), or by testing each filter (`naive`).
//! - `churn/…`: one SUBSCRIBE and its UNSUBSCRIBE on an index of that size.
//!
//! Run with `cargo bench -p midge-core --bench topic_index`; building the 1M index takes a few
//! seconds, and the naive matcher at 1M is measured with few samples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use criterion::{Criterion, criterion_group, criterion_main};
use midge_codec::{SubscriptionOptions, TopicFilter};
use midge_core::SessionCell;
use midge_core::topic_index::{Matches, Subscriber, TopicIndex};

/// A small deterministic generator (xorshift), so that every run measures the same index.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const REGIONS: u64 = 100;
const METRICS: u64 = 10;
const SUBSCRIPTIONS_PER_SESSION: usize = 100;

fn filter(rng: &mut Rng, devices: u64) -> String {
    let (region, device, metric) = (rng.below(REGIONS), rng.below(devices), rng.below(METRICS));
    match rng.below(100) {
        0..90 => format!("fleet/r{region}/dev/{device}/m{metric}"),
        90..95 => format!("fleet/r{region}/dev/+/m{metric}"),
        95..99 => format!("fleet/r{region}/dev/{device}/#"),
        _ => format!("+/r{region}/#"),
    }
}

fn topic(rng: &mut Rng, devices: u64) -> String {
    let (region, device, metric) = (rng.below(REGIONS), rng.below(devices), rng.below(METRICS));
    format!("fleet/r{region}/dev/{device}/m{metric}")
}

/// An index of about `size` subscriptions, the same filters as strings, and topics to look up.
struct Fixture {
    index: TopicIndex,
    filters: Vec<String>,
    topics: Vec<String>,
    session: Arc<SessionCell>,
}

fn fixture(size: usize) -> Fixture {
    // Devices per region such that exact filters rarely repeat.
    let devices = (size as u64 / REGIONS).max(10);
    let mut rng = Rng(0x6d69_6467_655f_6978);
    let mut index = TopicIndex::default();
    let mut filters = Vec::with_capacity(size);
    let mut session = Arc::new(SessionCell::new(ByteString::from_static("s0")));
    for n in 0..size {
        if n % SUBSCRIPTIONS_PER_SESSION == 0 {
            session = Arc::new(SessionCell::new(ByteString::from(format!("s{n}"))));
        }
        let text = filter(&mut rng, devices);
        let parsed = TopicFilter::try_from(text.as_str()).unwrap();
        // A session subscribing to a filter it has replaces that subscription.
        if !index.subscribe(&parsed, subscriber(&session)) {
            filters.push(text);
        }
    }
    let topics = (0..1024).map(|_| topic(&mut rng, devices)).collect();
    Fixture {
        index,
        filters,
        topics,
        session,
    }
}

fn subscriber(session: &Arc<SessionCell>) -> Subscriber {
    Subscriber {
        session: session.clone(),
        options: SubscriptionOptions::default(),
        id: None,
    }
}

fn naive_count(filters: &[String], topic: &str) -> usize {
    filters
        .iter()
        .filter(|f| midge_auth::topic_match::matches(f, topic))
        .count()
}

fn trie_count(index: &TopicIndex, topic: &str) -> usize {
    let mut matches = Matches::default();
    index.matches(topic, &mut matches);
    matches.plain.len()
}

fn bench(c: &mut Criterion) {
    for (label, size) in [("10k", 10_000), ("1M", 1_000_000)] {
        let fixture = fixture(size);
        // Both matchers must find the same subscriptions, or the comparison means nothing.
        for topic in fixture.topics.iter().take(64) {
            assert_eq!(
                trie_count(&fixture.index, topic),
                naive_count(&fixture.filters, topic),
                "{topic}"
            );
        }
        let mut group = c.benchmark_group(format!("topic_index/{label}"));
        group.measurement_time(Duration::from_secs(3));
        let mut next = 0;
        group.bench_function("match/trie", |b| {
            b.iter(|| {
                next = (next + 1) % fixture.topics.len();
                black_box(trie_count(&fixture.index, &fixture.topics[next]))
            });
        });
        if size > 100_000 {
            group.sample_size(10);
        }
        group.bench_function("match/naive", |b| {
            b.iter(|| {
                next = (next + 1) % fixture.topics.len();
                black_box(naive_count(&fixture.filters, &fixture.topics[next]))
            });
        });
        group.sample_size(100);
        let mut index = fixture.index;
        let churn = TopicFilter::try_from("fleet/r1/dev/churn/+").unwrap();
        group.bench_function("churn/subscribe-unsubscribe", |b| {
            b.iter(|| {
                index.subscribe(&churn, subscriber(&fixture.session));
                black_box(index.unsubscribe(&churn, &fixture.session))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
