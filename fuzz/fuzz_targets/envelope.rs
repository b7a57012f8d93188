//! The envelope decoder on arbitrary bytes: it never panics, and whatever it accepts encodes
//! and decodes back to itself (consumers of the public contract rely on both).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkage_bus::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let again = Envelope::decode(&envelope.encode()).expect("an accepted envelope re-decodes");
        assert_eq!(again, envelope);
    }
});
