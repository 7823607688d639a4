"""Samplers: small sources of numbers about a process, read at each epoch end (hook) or
every second (daemon).

Each sampler takes what it samples as constructor arguments (a pid, an NVML module),
so tests feed it fixtures and the daemon points it at other processes.
"""
