"""Generated gRPC stubs: `make grpc-stubs` writes them (online_inference/devtools/grpc_stubs.py)."""
