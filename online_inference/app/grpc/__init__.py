"""The gRPC transport: grpclib's server on the loop uvicorn runs, with the limits, the memory budget, the queue and the drain it lacks; it serves the protocol handlers the composition gives it."""
