"""Puts and gets a key through stubs generated from dialkv's .proto files alone.

Usage: python3 smoke.py PROTO_DIR OUT_DIR HOST:PORT

The proof that any language can use dialkv: nothing here comes from the Rust code.
"""
import sys

from grpc_tools import protoc


def main() -> int:
    proto_dir, out_dir, target = sys.argv[1:4]
    files = ["dialkv/v1/types.proto", "dialkv/v1/kv.proto", "dialkv/v1/admin.proto"]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    if rc != 0:
        print(f"protoc failed with {rc}", file=sys.stderr)
        return 1
    sys.path.insert(0, out_dir)
    import grpc
    from dialkv.v1 import admin_pb2, admin_pb2_grpc, kv_pb2, kv_pb2_grpc, types_pb2

    with grpc.insecure_channel(target) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        put = kv.Put(kv_pb2.PutRequest(namespace="default", key=b"from-python", value=b"hello",
                                       request_id=types_pb2.RequestId(client_id=4242, seq=1)), timeout=10)
        assert put.version.revision > 0, put
        got = kv.Get(kv_pb2.GetRequest(namespace="default", key=b"from-python",
                                       consistency=types_pb2.Consistency(level=types_pb2.LINEARIZABLE)), timeout=10)
        assert got.found and got.value == b"hello", got
        assert got.header.served_level == types_pb2.LINEARIZABLE, got.header
        try:
            kv.Put(kv_pb2.PutRequest(namespace="default", key=b""), timeout=10)
            raise AssertionError("an empty key was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            assert "key" in e.details(), e.details()
        names = [n.spec.name for n in admin_pb2_grpc.NamespacesStub(channel)
                 .ListNamespaces(admin_pb2.ListNamespacesRequest(), timeout=10).namespaces]
        assert "default" in names, names
    print("python client ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
