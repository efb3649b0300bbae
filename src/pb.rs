//! Generated protobuf and gRPC types for `rolecall.v1`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("rolecall.v1");

/// The encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rolecall_descriptor");
