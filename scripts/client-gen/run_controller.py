"""Answers one question through the generated Python client: calls
pecr.v1.ControllerService/Run and checks that the answer is SUPPORTED.

Usage: run_controller.py GENERATED_PYTHON_DIR CONTROLLER_HOST:PORT PRINCIPAL QUERY

Exits 0 with a one-line summary when the controller answers SUPPORTED with
at least one claim; 1 otherwise (the status, or the mode it answered).
"""

import sys

import grpc


def main() -> int:
    generated, address, principal, query = sys.argv[1:]
    # The generated modules import each other as `pecr.v1.*`.
    sys.path.insert(0, generated)
    from pecr.v1 import common_pb2, controller_pb2, controller_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = controller_pb2_grpc.ControllerServiceStub(channel)
        try:
            response = stub.Run(
                controller_pb2.RunRequest(query=query),
                metadata=[("x-pecr-principal-id", principal)],
                timeout=30,
            )
        except grpc.RpcError as error:
            print(f"Run failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1

    mode = common_pb2.TerminalMode.Name(response.terminal_mode)
    claims = len(response.claim_map.claims)
    print(f"terminal_mode {mode}, {claims} claims, run_id {response.run_id}: {response.response_text!r}")
    if response.terminal_mode != common_pb2.SUPPORTED or claims == 0:
        print("expected SUPPORTED with at least one claim", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
