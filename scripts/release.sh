#!/usr/bin/env bash
# Cuts a release: builds the four binaries reproducibly, packs one tarball
# per binary, and writes SHA256SUMS and signed SLSA provenance beside them.
#
# Usage: scripts/release.sh --key FILE [--allow-dirty] [--binaries DIR]
#                           [--out-dir DIR] [--source-uri URI] [--builder-id URI]
#
#   --key FILE         Ed25519 signing key, PKCS#8 PEM (openssl genpkey -algorithm ed25519)
#   --allow-dirty      cut a release from a work tree with uncommitted changes
#                      (recorded in the provenance; the directory name ends in -dirty)
#   --binaries DIR     pack the binaries already in DIR instead of building them
#                      (tests; recorded in the provenance)
#   --out-dir DIR      where the release directory goes (default target/release-dist)
#   --source-uri URI   the source's address (default: the git remote origin, else git+file://ROOT)
#   --builder-id URI   who builds (default urn:pecr:builder:host:$(hostname))
#
# Output: OUT_DIR/<version>-<commit12>[-dirty]/ with
#   <binary>-<version>-<commit12>-<target>.tar.gz   one per binary
#   SHA256SUMS                                      sha256sum's format
#   provenance.intoto.jsonl                         DSSE envelope (in-toto Statement v1, SLSA provenance v1)
# Verify with scripts/verify-release.sh DIR --public-key FILE [--commit SHA].
#
# Reproducible: the same commit, toolchain and target give the same tarballs
# (RUNBOOK.md, "Release provenance"; docs/decisions.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

# The toolchain releases are built with, the same as the images' builder
# (deploy/docker/*.Dockerfile: rust:<this>).
PINNED_RUST=1.95.0
# Each binary is built on its own, as its image builds it, so one binary's
# features never leak into another through Cargo's feature unification.
BINARIES=(pecr-gateway pecr-controller pecr-ledger-writer pecr)
declare -A CARGO_ARGS=(
  [pecr-gateway]="-p pecr-gateway"
  [pecr-controller]="-p pecr-controller --features pecr-controller/rlm"
  [pecr-ledger-writer]="-p pecr-ledger-writer"
  [pecr]="-p pecr-cli"
)

original_args=("$@")
key="" allow_dirty=0 binaries="" out_dir="$PECR_ROOT/target/release-dist" source_uri="" builder_id=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --key) key="${2:?--key needs a file}"; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    --binaries) binaries="${2:?--binaries needs a directory}"; shift 2 ;;
    --out-dir) out_dir="${2:?--out-dir needs a directory}"; shift 2 ;;
    --source-uri) source_uri="${2:?--source-uri needs a URI}"; shift 2 ;;
    --builder-id) builder_id="${2:?--builder-id needs a URI}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ -n "$key" ]] || die "--key FILE is required (the Ed25519 release signing key)"
[[ -r "$key" ]] || die "cannot read the key $key"
key="$(cd "$(dirname "$key")" && pwd)/$(basename "$key")"
for tool in git tar gzip openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
started_on="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

say "==> source"
commit="$(git rev-parse --verify HEAD)"
short="${commit:0:12}"
dirty=0
if [[ -n "$(git status --porcelain --untracked-files=normal)" ]]; then
  dirty=1
  [[ "$allow_dirty" -eq 1 ]] || {
    git status --short >&2
    die "the work tree has uncommitted changes (above); commit them, or pass --allow-dirty"
  }
fi
version="$(awk '
  /^\[/ { in_package = ($0 == "[workspace.package]") }
  in_package && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' Cargo.toml)"
[[ -n "$version" ]] || die "no version in Cargo.toml's [workspace.package]"
release="$version-$short"
[[ "$dirty" -eq 0 ]] || release="$release-dirty"
source_uri="${source_uri:-$(git remote get-url origin 2>/dev/null || echo "git+file://$PECR_ROOT")}"
builder_id="${builder_id:-urn:pecr:builder:host:$(hostname)}"
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct "$commit")"
export SOURCE_DATE_EPOCH
say "commit $commit ($([[ "$dirty" -eq 1 ]] && echo dirty || echo clean)), version $version, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH"

say "==> toolchain"
rustc_version="$(rustc -V)"
cargo_version="$(cargo -V)"
case "$rustc_version" in
  "rustc $PINNED_RUST "*) ;;
  *) die "releases are built with rustc $PINNED_RUST, this is $rustc_version" ;;
esac
target="$(rustc -vV | sed -n 's/^host: //p')"
sysroot="$(rustc --print sysroot)"
say "$rustc_version, $cargo_version, target $target"

# Paths on the build machine stay out of the binaries: the source tree,
# Cargo's registry and the toolchain are renamed to fixed prefixes (rustc's
# own std paths are already /rustc/<commit>). C code (ring) gets the same.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
remaps=("$PECR_ROOT=/pecr" "$cargo_home=/cargo" "$sysroot=/rust")
rustflags=() cflags=()
for remap in "${remaps[@]}"; do
  rustflags+=("--remap-path-prefix=$remap")
  cflags+=("-ffile-prefix-map=$remap")
done
build_dir="$PECR_ROOT/target/release-build"
# The flags of a build made here, for the provenance.
build_flags=()
if [[ -z "$binaries" ]]; then
  say "==> cargo build --release --locked (into $build_dir)"
  for bin in "${BINARIES[@]}"; do
    # shellcheck disable=SC2086 # CARGO_ARGS holds words on purpose
    CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${rustflags[*]}")" \
    CFLAGS="${cflags[*]}" CARGO_INCREMENTAL=0 \
      cargo build --release --locked --quiet --target-dir "$build_dir" ${CARGO_ARGS[$bin]}
  done
  binaries="$build_dir/release"
  how_built="cargo build --release --locked --target-dir target/release-build, per binary:"
  for bin in "${BINARIES[@]}"; do how_built+=" [${CARGO_ARGS[$bin]}]"; done
  build_flags=(--internal "rustflags=${rustflags[*]}" --internal "cflags=${cflags[*]}")
else
  say "==> packing the binaries in $binaries (not built here)"
  how_built="not built: packed the binaries in $binaries"
fi
for bin in "${BINARIES[@]}"; do
  [[ -x "$binaries/$bin" ]] || die "$binaries/$bin is missing"
done

say "==> packing into $out_dir/$release"
mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.$release.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dist="$work/dist"
mkdir -p "$dist"
# Deterministic archives: names sorted, one mtime, root-owned, modes
# normalised, no gzip name or time (level 6, gzip's default).
pack() {
  local stage="$1" name="$2"
  tar --create --format=gnu --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
      --owner=0 --group=0 --numeric-owner --mode='u+rw,go-w,a+rX' \
      --directory "$stage" "$name" | gzip -n > "$dist/$name.tar.gz"
}
for bin in "${BINARIES[@]}"; do
  name="$bin-$release-$target"
  stage="$work/stage/$bin"
  install -D -m 0755 "$binaries/$bin" "$stage/$name/bin/$bin"
  if [[ "$bin" == pecr-controller ]]; then
    # The RLM bridge and its vendored package, where the image keeps them
    # (point PECR_RLM_SCRIPT_PATH at share/pecr/pecr_rlm_bridge.py).
    git ls-files -z -- scripts/rlm/pecr_rlm_bridge.py vendor/rlm | while IFS= read -r -d '' file; do
      install -D -m "$([[ -x "$file" ]] && echo 0755 || echo 0644)" "$file" \
        "$stage/$name/share/pecr/${file#scripts/rlm/}"
    done
  fi
  pack "$stage" "$name"
done
finished_on="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

say "==> signing"
attest=(--key "$key" --source-uri "$source_uri" --commit "$commit"
  --release-version "$version" --builder-id "$builder_id"
  --invocation-id "$(cat /proc/sys/kernel/random/uuid)"
  --started-on "$started_on" --finished-on "$finished_on"
  --material "Cargo.lock=$PECR_ROOT/Cargo.lock"
  --material "rustc=$sysroot/bin/rustc"
  --material "cargo=$(rustup which cargo 2>/dev/null || command -v cargo)"
  --internal "rustc=$rustc_version" --internal "cargo=$cargo_version"
  --internal "target=$target" --internal "sourceDateEpoch=$SOURCE_DATE_EPOCH"
  --internal "build=$how_built" "${build_flags[@]}")
[[ "$dirty" -eq 0 ]] || attest+=(--dirty)
# The compiler proper lives in this library; rustc is a small front.
for driver in "$sysroot"/lib/librustc_driver-*.so; do
  if [[ -f "$driver" ]]; then attest+=(--material "librustc_driver=$driver"); fi
done
"$binaries/pecr" release attest "$dist" "${attest[@]}" -- "${original_args[@]}"

say "==> checking it with the public key"
openssl pkey -in "$key" -pubout -out "$work/release.pub"
"$binaries/pecr" release verify "$dist" --public-key "$work/release.pub" --commit "$commit" >/dev/null

rm -rf "${out_dir:?}/$release"
mv "$dist" "$out_dir/$release"
say
say "release $release: $out_dir/$release"
(cd "$out_dir/$release" && sed 's/^/  /' SHA256SUMS)
say "verify: scripts/verify-release.sh $out_dir/$release --public-key <public key> --commit $short"
