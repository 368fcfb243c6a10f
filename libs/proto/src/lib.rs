//! The `pecr.v1` contract as Rust: messages, tonic clients and servers, and
//! the encoded descriptor set used by gRPC reflection and the REST edge.
//!
//! This is the only crate that runs code generation; it re-exports `tonic`
//! and `prost` so every crate uses the same versions.

pub use prost;
pub use tonic;

/// `pecr.v1`: every PECR contract type and service.
pub mod pecr {
    pub mod v1 {
        tonic::include_proto!("pecr.v1");
        include!(concat!(env!("OUT_DIR"), "/clients/pecr.v1.rs"));
    }
}

/// The subset of Google's API protos that PECR uses.
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub use pecr::v1;

pub mod codec;
pub mod convert;
pub mod error_detail;

/// The encoded `FileDescriptorSet` of every proto under `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pecr_descriptor.bin"));

/// Fully qualified gRPC service names.
pub mod service_names {
    pub const GATEWAY: &str = "pecr.v1.GatewayService";
    pub const CONTROLLER: &str = "pecr.v1.ControllerService";
    pub const LEDGER: &str = "pecr.v1.LedgerService";
}
