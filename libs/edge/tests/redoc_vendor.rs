//! The vendored Redoc bundle is the pinned npm package's, byte for byte,
//! and the pin, the recorded version and the embedded file agree.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `redoc@X` pin of scripts/npm-tools.sh.
fn pinned_version() -> String {
    let script =
        std::fs::read_to_string(root().join("scripts/npm-tools.sh")).expect("npm-tools.sh");
    script
        .lines()
        .find_map(|line| line.trim().strip_prefix("\"redoc@"))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("scripts/npm-tools.sh pins redoc")
        .to_owned()
}

#[test]
fn the_pin_the_version_file_and_the_embedded_bundle_agree() {
    assert_eq!(pecr_edge::REDOC_VERSION.trim(), pinned_version());
    let vendored =
        std::fs::read(root().join("vendor/redoc/redoc.standalone.js")).expect("vendored bundle");
    assert_eq!(vendored, pecr_edge::REDOC_STANDALONE_JS);
    assert!(root().join("vendor/redoc/LICENSE").is_file());
}

#[test]
fn the_vendored_bundle_is_the_installed_package_when_present() {
    let package = root().join(".tools/npm/node_modules/redoc");
    let Ok(manifest) = std::fs::read_to_string(package.join("package.json")) else {
        eprintln!("skipped: .tools/npm has no redoc (run scripts/npm-tools.sh)");
        return;
    };
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("package.json");
    assert_eq!(manifest["version"], pinned_version().as_str());
    let installed = std::fs::read(package.join("bundles/redoc.standalone.js")).expect("bundle");
    assert!(
        installed == pecr_edge::REDOC_STANDALONE_JS,
        "vendor/redoc/redoc.standalone.js differs from redoc {}; copy it again (vendor/README.md)",
        pinned_version()
    );
}
