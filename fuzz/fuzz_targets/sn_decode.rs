//! The MQTT-SN v1.2 decoder: any datagram. What decodes must encode, and decode back to the
//! same message.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use midge_sn::v12;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = v12::decode(Bytes::copy_from_slice(data)) {
        let mut encoded = BytesMut::new();
        message.encode(&mut encoded).expect("a decoded message encodes");
        assert_eq!(v12::decode(encoded.freeze()).as_ref(), Ok(&message));
    }
});
