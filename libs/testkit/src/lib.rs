//! Test support shared by the service crates' integration tests.
//!
//! Nothing here is mocked: tests get a real PostgreSQL schema, real service
//! binaries listening on ephemeral ports, and a real TCP proxy for faults.

mod corpus;
pub mod credentials;
mod database;
mod http;
mod process;
mod proxy;
mod wait;

pub use corpus::scratch_corpus;
pub use database::TestDatabase;
pub use http::{HttpAnswer, http_get, http_post_json, http_request, http_try_request};
pub use process::{ServiceProcess, binary_path, tool_path, workspace_root};
pub use proxy::TcpProxy;
pub use wait::eventually;
