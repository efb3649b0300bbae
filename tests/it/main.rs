//! Integration tests over real gRPC: the server on a TCP port 0 and on a
//! Unix socket, talked to with the generated tonic client.

mod admin;
mod check_route;
mod cli;
mod consistency;
mod docs;
mod durability;
mod errors;
mod hardening;
mod metrics;
mod scenarios;
mod shutdown;
mod standard;
mod support;
