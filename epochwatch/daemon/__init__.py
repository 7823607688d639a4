"""The host daemon: one service that training processes on a host attach to.

Importing this package is cheap: the hook imports `epochwatch.daemon.protocol` for the
wire format, and nothing here imports TensorFlow, psutil or NVML at import time.
"""
