"""The host daemon: one service that training processes on a host attach to.

Nothing outside the daemon imports this package: the wire format it speaks is
`epochwatch.trace.protocol`. Nothing here imports TensorFlow, psutil or NVML at import time.
"""
