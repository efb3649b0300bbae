//! Compiles the wire contract with pure-Rust tooling (protox), so building
//! rolecall needs no system `protoc`, and emits the descriptor set that the
//! reflection service serves.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/rolecall/v1/authz.proto",
        "proto/rolecall/v1/admin.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("rolecall_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // prost's codec, but a malformed request is INVALID_ARGUMENT.
        .codec_path("crate::api::codec::ProstCodec")
        // A piece holds a whole Workspace inline; boxed, it does not make
        // every ApplyRequest ten times its size.
        .boxed(".rolecall.v1.ApplyRequest.body.snapshot_piece")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
