//! The operator docs against the binary's own flags.

use clap::Args;
use rolecall::server::ServeArgs;

#[test]
fn the_operations_guide_lists_every_flag_and_its_variable() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        assert!(doc.contains(&format!("`--{long}`")), "--{long} is missing");
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(doc.contains(&format!("`{env}`")), "{env} is missing");
        }
    }
}
