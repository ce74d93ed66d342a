"""A container's whole lifecycle through a Python client of the v1 API.

Usage: lifecycle.py SOCKET ROOTFS [CONTAINER_ID]

The client code is generated from proto/ by grpcio-tools; the directory it was
generated into must be on PYTHONPATH (integration/tests/clients.rs does it):

    python -m grpc_tools.protoc -I proto --python_out=DIR --grpc_python_out=DIR \
        proto/libcrun_shim/v1/*.proto

Over `unix:SOCKET`, it creates a container from the root filesystem ROOTFS
running a shell script that writes to stdout and stderr and exits with 3,
starts it, waits for it, follows its logs through the LogService server stream
and deletes it. It prints one JSON object on stdout:

    {"exit_code": 3, "stdout": "...", "stderr": "...", "status": "...",
     "deleted": true}

where `status` is the container's status after the wait and `deleted` tells
that Inspect answered NOT_FOUND after the Delete. Any failure raises
(a traceback on stderr, exit status 1); every call has a deadline.
"""

import json
import sys

import grpc
from libcrun_shim.v1 import container_pb2, container_pb2_grpc, logs_pb2, logs_pb2_grpc

# Deadlines, in seconds.
CONNECT_TIMEOUT = 10
CALL_TIMEOUT = 30
WAIT_TIMEOUT = 60

SCRIPT = "echo hello from python; echo to stderr >&2; exit 3"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    socket, rootfs = sys.argv[1], sys.argv[2]
    container_id = sys.argv[3] if len(sys.argv) == 4 else "python-lifecycle"

    # The channel as grpcio's documentation makes it, no options: gRPC core
    # (since 1.57) sends the socket path as the HTTP/2 :authority of a
    # `unix:` target, which our servers accept.
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
        containers = container_pb2_grpc.ContainerServiceStub(channel)
        logs = logs_pb2_grpc.LogServiceStub(channel)

        config = container_pb2.ContainerConfig(
            id=container_id,
            rootfs=rootfs,
            command=["sh", "-c", SCRIPT],
        )
        containers.Create(
            container_pb2.CreateContainerRequest(config=config), timeout=CALL_TIMEOUT
        )
        try:
            containers.Start(
                container_pb2.StartContainerRequest(id=container_id), timeout=CALL_TIMEOUT
            )
            exit_status = containers.Wait(
                container_pb2.WaitContainerRequest(id=container_id), timeout=WAIT_TIMEOUT
            ).exit
            container = containers.Inspect(
                container_pb2.InspectContainerRequest(id=container_id), timeout=CALL_TIMEOUT
            ).container

            out, err = bytearray(), bytearray()
            stream = logs.Logs(
                logs_pb2.LogsRequest(container_id=container_id, follow=True),
                timeout=CALL_TIMEOUT,
            )
            for batch in stream:
                for entry in batch.entries:
                    if entry.stream == logs_pb2.LOG_STREAM_STDERR:
                        err += entry.data
                    else:
                        out += entry.data
        except BaseException:
            # Leave nothing behind (force: it may still run), and report the
            # first failure, not this one.
            try:
                containers.Delete(
                    container_pb2.DeleteContainerRequest(id=container_id, force=True),
                    timeout=CALL_TIMEOUT,
                )
            except grpc.RpcError:
                pass
            raise

        # A stopped container is deleted without force, and is gone after.
        containers.Delete(
            container_pb2.DeleteContainerRequest(id=container_id), timeout=CALL_TIMEOUT
        )
        try:
            containers.Inspect(
                container_pb2.InspectContainerRequest(id=container_id), timeout=CALL_TIMEOUT
            )
            deleted = False
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            deleted = True

    print(
        json.dumps(
            {
                "exit_code": exit_status.exit_code,
                "stdout": out.decode(),
                "stderr": err.decode(),
                "status": container_pb2.ContainerStatus.Name(container.status),
                "deleted": deleted,
            }
        )
    )


if __name__ == "__main__":
    main()
