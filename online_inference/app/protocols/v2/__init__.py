"""The Open Inference Protocol (V2): its tensors, shared by REST (JSON and binary data) and gRPC."""
