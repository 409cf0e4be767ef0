"""Helpers of the protocol examples: the servers they load, each a child process on loopback.

Not part of pytest-swarm: a project testing its own WebSocket, Redis or gRPC service points the
examples' fixtures at that service instead (``SWARM_WS_URL``, ``SWARM_REDIS_URL``,
``SWARM_GRPC_TARGET``).
"""
