//! Arbitrary bytes as a Check request: the inline reader
//! (`rolecall::api::check_wire`) and prost must agree on every input,
//! either the same fields or the same error, and neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use rolecall::api::check_wire::{CheckFields, CheckWire};
use rolecall::pb;

fuzz_target!(|bytes: &[u8]| {
    let ours = CheckWire::decode(&mut &bytes[..]).map_err(|e| e.to_string());
    let prost = pb::CheckRequest::decode(bytes).map_err(|e| e.to_string());
    match (&ours, &prost) {
        (Ok(wire), Ok(message)) => match wire.fields() {
            Ok(fields) => assert_eq!(fields, CheckFields::from(message)),
            Err(e) => panic!("decoded, but its fields are not readable: {e}"),
        },
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("the decoders disagree: ours {ours:?}, prost {prost:?}"),
    }
});
