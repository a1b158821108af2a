"""The descriptor pool of the generated stubs (see online_inference/devtools/grpc_stubs.py)."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
