//! Topic Name and Topic Filter validation on arbitrary strings. A valid filter's shared parts
//! must rebuild it, and a valid name is always a valid filter.

#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_codec::{TopicFilter, TopicName};

fuzz_target!(|text: &str| {
    let name = TopicName::try_from(text);
    let filter = TopicFilter::try_from(text);
    if name.is_ok() && !text.starts_with("$share/") {
        assert!(filter.is_ok(), "valid name {text:?} refused as a filter");
    }
    if let Ok(filter) = filter {
        if let Some(shared) = filter.shared() {
            assert!(!shared.group.is_empty() && !shared.filter.is_empty());
            assert_eq!(format!("$share/{}/{}", shared.group, shared.filter), filter.as_str());
        }
        let _ = filter.has_wildcards();
    }
});
