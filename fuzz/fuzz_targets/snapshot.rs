//! Snapshot text (YAML or JSON) from arbitrary bytes: parsing (with the
//! second reading that lists every misfit) and validation never panic, a
//! refused text names at least one problem, and a snapshot that validates exports (as the
//! Admin API's Export does) to a spec that validates again to the same
//! model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolecall::engine::Snapshot;
use rolecall::model::parse::{from_text, snapshot_from_text};
use rolecall::model::{validate_snapshot, SnapshotSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match snapshot_from_text(text, "fuzz") {
        Ok(spec) => spec,
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused with no problem");
            return;
        }
    };
    let Ok(workspaces) = validate_snapshot(&spec) else {
        return;
    };
    let exported = match Snapshot::from_workspaces(workspaces).to_spec() {
        Ok(s) => s,
        Err(e) => panic!("a built snapshot cannot be exported: {e}"),
    };
    let again = match validate_snapshot(&exported) {
        Ok(w) => w,
        Err(e) => panic!("an exported snapshot does not validate: {e}\n{exported:?}"),
    };
    let twice = match Snapshot::from_workspaces(again).to_spec() {
        Ok(s) => s,
        Err(e) => panic!("a built snapshot cannot be exported: {e}"),
    };
    assert_eq!(exported, twice, "export is not stable");
    // And through the file format: JSON text parses back to the same spec.
    let json = serde_json_text(&exported);
    let parsed: SnapshotSpec = match from_text(&json, "export") {
        Ok(s) => s,
        Err(e) => panic!("exported JSON does not parse: {e}\n{json}"),
    };
    assert_eq!(parsed, exported, "JSON round trip changed the spec");
});

fn serde_json_text(spec: &SnapshotSpec) -> String {
    match serde_json::to_string(spec) {
        Ok(t) => t,
        Err(e) => panic!("cannot serialize an exported spec: {e}"),
    }
}
