//! Compiles `proto/` with the pure-Rust protox compiler (no system protoc)
//! and hands the descriptors to tonic-prost-build.

use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "../../proto";
const ENTRY_FILES: &[&str] = &[
    "pecr/v1/options.proto",
    "pecr/v1/common.proto",
    "pecr/v1/errors.proto",
    "pecr/v1/replay.proto",
    "pecr/v1/gateway.proto",
    "pecr/v1/controller.proto",
    "pecr/v1/ledger.proto",
    "google/rpc/status.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(PROTO_ROOT);
    // protox reports no file paths to cargo, so every proto is listed here.
    emit_rerun_for_dir(root)?;

    let mut compiler = protox::Compiler::new([root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(ENTRY_FILES)?;
    // The encoded set keeps extension options (google.api.http, json_text);
    // prost_types drops them, so reflection and the edge use these bytes.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("pecr_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let descriptors = compiler.file_descriptor_set();

    // Servers decode requests with our codec (a malformed request is the
    // caller's fault: INVALID_ARGUMENT); clients keep tonic's prost codec (a
    // malformed reply is the server's fault), so they are generated apart,
    // into `clients/`, reusing the messages generated with the servers.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("crate::codec::PecrCodec")
        .compile_fds(descriptors.clone())?;
    let clients = out_dir.join("clients");
    std::fs::create_dir_all(&clients)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .out_dir(clients)
        .extern_path(".pecr.v1", "crate::pecr::v1")
        .extern_path(".google.api", "crate::google::api")
        .extern_path(".google.rpc", "crate::google::rpc")
        .compile_fds(descriptors)?;
    Ok(())
}

fn emit_rerun_for_dir(dir: &Path) -> std::io::Result<()> {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            emit_rerun_for_dir(&path)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
