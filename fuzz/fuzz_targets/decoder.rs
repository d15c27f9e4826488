//! The incremental decoder, as a server's read loop drives it: bytes arrive in pieces, whole
//! packets are taken off the front. The first input byte picks the version and the chunk size.
//!
//! Oracle beyond "no panic": a refused buffer is never partly consumed into a packet, and every
//! packet that decodes encodes back to bytes that decode to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge_codec::{Decoder, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let version = match control % 3 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let chunk = usize::from(control / 3).max(1);
    let decoder = Decoder::new(version, 64 * 1024);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    let mut encoded = BytesMut::new();
                    packet.encode(version, &mut encoded).expect("a decoded packet encodes");
                    let again = decoder.decode(&mut encoded).expect("re-encoded packet decodes");
                    assert_eq!(again.as_ref(), Some(&packet));
                    assert!(encoded.is_empty());
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "need-more must consume nothing");
                    break;
                }
                Err(error) => {
                    let _ = error.reason_code();
                    return;
                }
            }
        }
    }
});
