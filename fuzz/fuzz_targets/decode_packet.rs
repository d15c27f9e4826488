//! The one-shot entry point: a buffer said to hold exactly one packet, in a version picked by
//! the first byte. Decoded packets must survive encode and decode unchanged.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use midge_codec::{ProtocolVersion, decode_packet};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let version = match control % 3 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    if let Ok(packet) = decode_packet(Bytes::copy_from_slice(input), version) {
        let mut encoded = BytesMut::new();
        packet.encode(version, &mut encoded).expect("a decoded packet encodes");
        assert_eq!(decode_packet(encoded.freeze(), version).as_ref(), Ok(&packet));
    }
});
