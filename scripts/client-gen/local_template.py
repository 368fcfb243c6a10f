"""Prints buf.gen.yaml as a `buf generate --template` value (JSON), without
the Go plugins when Go's generators are not installed.

Usage: local_template.py BUF_GEN_YAML [--without-go]

The Go targets stay in buf.gen.yaml for the people who have Go; the check
(scripts/client-gen-check.sh) runs the Python and TypeScript ones. Exactly
the two Go plugins must be dropped, so a renamed or removed Go target is an
error here rather than a silent change.
"""

import json
import sys

import yaml

GO_PLUGINS = {"protoc-gen-go", "protoc-gen-go-grpc"}


def plugin_program(plugin: dict) -> str:
    local = plugin.get("local", "")
    return local[0] if isinstance(local, list) else local


def main() -> int:
    path, *flags = sys.argv[1:]
    with open(path, encoding="utf-8") as file:
        template = yaml.safe_load(file)
    if flags == ["--without-go"]:
        kept = [p for p in template["plugins"] if plugin_program(p) not in GO_PLUGINS]
        dropped = {plugin_program(p) for p in template["plugins"]} & GO_PLUGINS
        if dropped != GO_PLUGINS:
            print(f"{path}: expected Go plugins {sorted(GO_PLUGINS)}, found {sorted(dropped)}", file=sys.stderr)
            return 1
        template["plugins"] = kept
    elif flags:
        print(f"unknown option {flags[0]}", file=sys.stderr)
        return 2
    print(json.dumps(template))
    return 0


if __name__ == "__main__":
    sys.exit(main())
