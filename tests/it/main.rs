//! Integration tests over real gRPC: the server on a TCP port 0 and on a
//! Unix socket, talked to with the generated tonic client.

mod consistency;
mod errors;
mod scenarios;
mod shutdown;
mod standard;
mod support;
