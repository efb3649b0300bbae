//! Arbitrary bytes as a Check request and as a CheckBatch request: the
//! readers off the wire (`rolecall::api::check_wire`, `batch_wire`) and
//! prost must agree on every input, either the same fields or the same
//! error, and none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use rolecall::api::batch_wire::CheckBatchWire;
use rolecall::api::check_wire::{CheckFields, CheckWire};
use rolecall::pb;

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    batch(bytes);
});

fn check(bytes: &[u8]) {
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
}

fn batch(bytes: &[u8]) {
    // A small limit, so that checks past it are exercised too.
    const MAX: usize = 3;
    let ours = CheckBatchWire::decode(&mut &bytes[..], MAX).map_err(|e| e.to_string());
    let prost = pb::CheckBatchRequest::decode(bytes).map_err(|e| e.to_string());
    match (&ours, &prost) {
        (Ok(wire), Ok(message)) => {
            assert_eq!(wire.len(), message.checks.len());
            let kept = if wire.is_inline() { MAX } else { usize::MAX };
            for (ours, theirs) in wire.checks().zip(&message.checks) {
                match ours {
                    Ok(fields) => assert_eq!(fields, CheckFields::from(theirs)),
                    Err(e) => panic!("decoded, but a check is not readable: {e}"),
                }
            }
            assert_eq!(wire.checks().count(), message.checks.len().min(kept));
            let theirs = CheckBatchWire::from(message.clone());
            assert_eq!(wire.requirement(), theirs.requirement());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("the decoders disagree: ours {ours:?}, prost {prost:?}"),
    }
}
