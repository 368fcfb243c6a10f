//! The codec of every generated PECR server: tonic's prost codec, except
//! that a request that is not a valid protobuf message is the caller's
//! error — `INVALID_ARGUMENT` carrying `ERR_INVALID_PARAMS` (400) — rather
//! than the `INTERNAL` tonic reports, which would page on-call as a 5xx.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::error_detail::status_with_detail;
use crate::v1::{ErrorResponse, TerminalMode};

/// The message of a request that does not decode (never its bytes).
pub const MALFORMED_REQUEST: &str = "malformed request message";

/// The status of a request that does not decode: `ERR_INVALID_PARAMS`
/// with its table defaults (400, `INSUFFICIENT_EVIDENCE`, not retryable).
pub fn malformed_request() -> Status {
    let error = ErrorResponse {
        code: "ERR_INVALID_PARAMS".to_owned(),
        message: MALFORMED_REQUEST.to_owned(),
        terminal_mode_hint: TerminalMode::InsufficientEvidence as i32,
        retryable: false,
        detail: None,
    };
    status_with_detail(tonic::Code::InvalidArgument, error, 400)
}

/// Encodes `T` and decodes `U` with prost.
#[derive(Debug, Clone)]
pub struct PecrCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for PecrCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for PecrCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _type: PhantomData }
    }
}

/// Decodes one request message; a decode failure is [`malformed_request`].
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        match U::decode(buf) {
            Ok(message) => Ok(Some(message)),
            Err(err) => {
                tracing::debug!(error = %err, "request message does not decode");
                Err(malformed_request())
            }
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
