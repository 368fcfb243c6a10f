"""Answers one question through the generated Python client: calls
pecr.v1.ControllerService/Run and checks that the answer is SUPPORTED, then
asks again with the server-streaming RunStream and checks that its steps
come before a last event holding the same decision.

Usage: run_controller.py GENERATED_PYTHON_DIR CONTROLLER_HOST:PORT PRINCIPAL QUERY

Exits 0 with a summary line per call when both answer SUPPORTED with at
least one claim; 1 otherwise (the status, or what came back).
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

        if not supported("Run", common_pb2, response):
            return 1
        try:
            events = list(
                stub.RunStream(
                    controller_pb2.RunStreamRequest(query=query),
                    metadata=[("x-pecr-principal-id", principal)],
                    timeout=30,
                )
            )
        except grpc.RpcError as error:
            print(f"RunStream failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1

    kinds = [event.WhichOneof("event") for event in events]
    print(f"RunStream events: {' '.join(kinds)}")
    if kinds.count("result") != 1 or kinds[-1] != "result" or "step_started" not in kinds:
        print("expected steps, then one last result event", file=sys.stderr)
        return 1
    return 0 if supported("RunStream", common_pb2, events[-1].result) else 1


def supported(rpc: str, common_pb2, response) -> bool:
    mode = common_pb2.TerminalMode.Name(response.terminal_mode)
    claims = len(response.claim_map.claims)
    print(f"{rpc}: terminal_mode {mode}, {claims} claims, run_id {response.run_id}: {response.response_text!r}")
    if response.terminal_mode != common_pb2.SUPPORTED or claims == 0:
        print("expected SUPPORTED with at least one claim", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
