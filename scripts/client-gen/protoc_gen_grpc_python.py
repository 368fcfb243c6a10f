"""protoc plugin `grpc_python` for buf, made from grpcio-tools.

grpcio-tools ships the gRPC Python generator only inside its own protoc
(`grpc_tools.protoc`), and buf runs built-in generators for protoc's own
languages only. This plugin bridges the two: it hands the request's files
to grpc_tools.protoc as a descriptor set, runs `--grpc_python_out` into a
scratch folder and answers with what was written there.

Run by buf.gen.yaml with the project's venv (scripts/tools.sh):
    local: [.tools/venv/bin/python, scripts/client-gen/protoc_gen_grpc_python.py]
"""

import sys
import tempfile
from pathlib import Path

from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    # The generator handles proto3 `optional` (it only names services).
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as scratch:
        descriptors = Path(scratch, "request.binpb")
        descriptors.write_bytes(FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(scratch, "out")
        out.mkdir()
        target = f"{request.parameter}:{out}" if request.parameter else str(out)
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--descriptor_set_in={descriptors}",
                f"--grpc_python_out={target}",
                *request.file_to_generate,
            ]
        )
        if status != 0:
            response.error = f"grpc_tools.protoc --grpc_python_out exited {status}"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            generated = response.file.add()
            generated.name = path.relative_to(out).as_posix()
            generated.content = path.read_text(encoding="utf-8")
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
