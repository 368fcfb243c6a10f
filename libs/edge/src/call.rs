//! The in-process gRPC call: the edge uses the service stack it was given
//! (e.g. `tonic::service::Routes` with its layers) as a client channel, so
//! everything in that stack runs once for REST and gRPC alike.

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::GrpcStack;

/// A codec that passes encoded protobuf messages through unchanged; the
/// edge encodes and decodes them itself with the method's descriptors.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThroughCodec;

impl Codec for PassThroughCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for PassThroughCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThroughCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Calls `path` (`/pkg.Service/Method`) on `service` with an encoded request.
pub(crate) async fn unary<S>(
    service: S,
    path: PathAndQuery,
    request: tonic::Request<Bytes>,
) -> Result<tonic::Response<Bytes>, Status>
where
    S: GrpcStack,
{
    ready_client(service)
        .await?
        .unary(request, path, PassThroughCodec)
        .await
}

/// As [`unary`] for a server-streaming method: the response's messages,
/// or the status of a call refused before its first message.
pub(crate) async fn server_streaming<S>(
    service: S,
    path: PathAndQuery,
    request: tonic::Request<Bytes>,
) -> Result<tonic::Response<tonic::Streaming<Bytes>>, Status>
where
    S: GrpcStack,
{
    ready_client(service)
        .await?
        .server_streaming(request, path, PassThroughCodec)
        .await
}

async fn ready_client<S>(service: S) -> Result<tonic::client::Grpc<S>, Status>
where
    S: GrpcStack,
{
    // In-process: the body limit was applied at the HTTP edge, and the
    // response is whatever the service produced.
    let mut client = tonic::client::Grpc::new(service)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    client.ready().await.map_err(|err| {
        let err: Box<dyn std::error::Error + Send + Sync> = err.into();
        Status::unavailable(format!("in-process service not ready: {err}"))
    })?;
    Ok(client)
}
