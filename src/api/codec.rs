//! The codec of the generated services (build.rs names it with
//! `codec_path`): tonic-prost's, except that a message prost cannot decode
//! is INVALID_ARGUMENT, as SPEC 5 answers a malformed request, where
//! tonic-prost says INTERNAL (a fault of the server, which it is not).
//! prost's message names the field, e.g. "failed to decode Protobuf
//! message: CheckRequest.subject: invalid string value: data is not UTF-8
//! encoded". No handler runs for such a request, so the codec counts it in
//! the metrics' errors.
//!
//! The generated clients use it too, so there a reply that cannot be
//! decoded is INVALID_ARGUMENT as well; rolecall's own clients are tools
//! and tests.

use std::any::TypeId;
use std::marker::PhantomData;

use prost::{DecodeError, Message};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use crate::metrics::{self, Rpc};
use crate::pb;

/// The status of a request message that cannot be decoded; an Authz
/// request's is counted in the metrics (no handler runs to count it).
pub fn malformed(rpc: Option<Rpc>, error: DecodeError) -> Status {
    if let Some(rpc) = rpc {
        metrics::malformed_request(rpc);
    }
    Status::invalid_argument(error.to_string())
}

/// The Authz RPC whose request is a `U`, if any.
fn authz_rpc<U: 'static>() -> Option<Rpc> {
    let u = TypeId::of::<U>();
    [
        (TypeId::of::<pb::CheckRequest>(), Rpc::Check),
        (TypeId::of::<pb::CheckBatchRequest>(), Rpc::CheckBatch),
        (TypeId::of::<pb::ListVisibleRequest>(), Rpc::ListVisible),
        (TypeId::of::<pb::ListSubjectsRequest>(), Rpc::ListSubjects),
    ]
    .into_iter()
    .find_map(|(t, rpc)| (t == u).then_some(rpc))
}

/// prost's codec with [`malformed`] requests.
#[derive(Debug)]
pub struct ProstCodec<T, U>(PhantomData<fn() -> (T, U)>);

impl<T, U> Default for ProstCodec<T, U> {
    fn default() -> Self {
        ProstCodec(PhantomData)
    }
}

impl<T, U> Codec for ProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MalformedIsInvalidArgument<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MalformedIsInvalidArgument(PhantomData)
    }
}

/// prost's decoder (with tonic's default buffer settings, as
/// tonic-prost's), whose failures are [`malformed`] requests.
#[derive(Debug)]
pub struct MalformedIsInvalidArgument<U>(PhantomData<fn() -> U>);

impl<U: Message + Default + 'static> Decoder for MalformedIsInvalidArgument<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| malformed(authz_rpc::<U>(), e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
