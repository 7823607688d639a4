"""The daemon: a Unix socket, the 1 Hz tick, reload, metrics, signals, systemd.

The runs themselves live in the registry (registry.py); the server listens, hands each
connection the registry, samples the registry's runs every tick and stops them all at
shutdown. One asyncio loop owns all state. Sampling (psutil, NVML, /proc) runs on one worker
thread so a slow driver call never stalls the socket; its results come back to the loop.
Process exits are seen through pidfds (instantly) with the 1 Hz sampler as a fallback
(a sample of a gone process raises NoSuchProcess).

Signals: SIGTERM/SIGINT stop (read what is already sent, write the open sample windows,
close every trace, exit 0: runs stay resumable by the next daemon); SIGHUP reloads the
config file.

With `metrics_port` set, Prometheus scrapes are served on the same loop (metrics_http), and
the collector (metrics) reads the sessions when scraped: no thread, no lock, no cost between
scrapes. Both modules (and prometheus_client) are imported only when metrics are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import grp
import logging
import os
import resource
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from epochwatch import __version__
from epochwatch.daemon.config import RESTART_ONLY, ConfigError, DaemonConfig, differences, load_config
from epochwatch.daemon.connection import Connection
from epochwatch.daemon.contention import ContentionScanner
from epochwatch.daemon.limits import UidLimits
from epochwatch.daemon.notify import Notifier, watchdog_interval
from epochwatch.daemon.registry import RunRegistry
from epochwatch.daemon.runsamplers import NvmlHub, ProcessChanged
from epochwatch.daemon.safedirs import UnsafeDirectory, open_dir
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import prepare_dirs

if TYPE_CHECKING:
    from epochwatch.daemon.metrics import DaemonCollector
    from epochwatch.daemon.metrics_http import MetricsServer

log = logging.getLogger("epochwatch.daemon")

STOP_DRAIN_SECONDS = 0.3


class StartError(Exception):
    """The daemon cannot start; one line for the operator."""


class Daemon:
    def __init__(
        self,
        cfg: DaemonConfig,
        *,
        config_path: str | None = None,
        flags: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.flags = flags or {}
        self.notifier = Notifier.from_env()
        self.limits = UidLimits(cfg.limits)
        self.connections: set[Connection] = set()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochwatch-sampler")
        self._nvml = NvmlHub()
        self.registry = RunRegistry(
            cfg,
            self.limits,
            self._nvml,
            on_change=self._update_status,
            on_end=self._run_ended,
            on_attach=self._first_sample,
            offload=self._pool.submit,
        )
        self._contention = ContentionScanner(self._nvml.gpu_processes)
        self._contention_due = 0.0
        self._stop: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._status_text = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics: DaemonCollector | None = None  # with metrics_port set
        self._metrics_server: MetricsServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        _raise_fd_limit()
        try:
            prepare_dirs(Path(self.cfg.state_dir))
        except UnsafeDirectory as exc:
            raise StartError(f"refusing state directory {self.cfg.state_dir}: {exc}") from None
        except OSError as exc:
            raise StartError(
                f"cannot use state directory {self.cfg.state_dir}: {exc.strerror or exc}"
            ) from None
        # Claim the socket first (refusing if another daemon is live), take the previous
        # daemon's runs back, and only then accept: a resuming hook finds its run.
        self._server = await self._listen(loop)
        try:
            await self._start_metrics()
        except StartError:
            self._server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.cfg.socket)
            raise
        self.registry.adopt()
        # What start-up made (modules, config, runs taken back) lives as long as the daemon:
        # the collector stops scanning it (a full pass had taken ~30 ms of the loop).
        gc.freeze()
        await self._server.start_serving()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        tick = asyncio.create_task(self._tick_loop(), name="tick")
        dog = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        log.info(
            "epochwatch %s daemon listening on %s (mode %o), traces in %s",
            __version__,
            self.cfg.socket,
            self.cfg.socket_mode,
            self.cfg.traces_dir,
        )
        self.notifier.ready(self.registry.describe())
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            tick.cancel()
            dog.cancel()
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
        path = self.cfg.socket
        try:  # nobody else may write where the socket goes: no symlink can be swapped in
            os.close(open_dir(Path(path).parent, 0o755, sticky_ok=True))
        except UnsafeDirectory as exc:
            raise StartError(f"refusing socket directory {Path(path).parent}: {exc}") from None
        except OSError as exc:
            raise StartError(
                f"cannot use socket directory {Path(path).parent}: {exc.strerror or exc}"
            ) from None
        _clear_stale_socket(path)
        # The socket gets its mode from the umask at bind: no chmod by path after it (a
        # path can be swapped for a symlink between bind and chmod).
        old_umask = os.umask(0o777 & ~self.cfg.socket_mode)
        try:
            server = await loop.create_unix_server(
                lambda: self._new_connection(), path, backlog=1024, start_serving=False
            )
        except OSError as exc:
            raise StartError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        if self.cfg.socket_group:
            try:
                os.lchown(path, -1, grp.getgrnam(self.cfg.socket_group).gr_gid)
            except (KeyError, OSError) as exc:
                server.close()
                raise StartError(f"cannot give {path} to group {self.cfg.socket_group!r}: {exc}") from None
        return server

    async def _start_metrics(self) -> None:
        """Serve Prometheus metrics when metrics_port is set (off by default; docs/metrics.md)."""
        if not self.cfg.metrics_port:
            return
        from epochwatch.daemon.metrics import DaemonCollector, registry_for
        from epochwatch.daemon.metrics_http import MetricsServer, bind_problem, read_token

        token = ""
        if self.cfg.metrics_token_file:
            try:
                token = read_token(self.cfg.metrics_token_file)
            except (OSError, ValueError) as exc:
                raise StartError(f"metrics_token_file {self.cfg.metrics_token_file}: {exc}") from None
        collector = DaemonCollector(lambda: self.registry.sessions.values(), lambda: len(self.connections))
        address, port = self.cfg.metrics_address, self.cfg.metrics_port
        server = MetricsServer(registry_for(collector), address, port, token=token)
        try:
            await server.start()
        except OSError as exc:
            raise StartError(bind_problem(address, port, exc)) from None
        self.metrics, self._metrics_server = collector, server
        log.info("serving Prometheus metrics at %s", server.url)

    def _new_connection(self) -> Connection:
        conn = Connection(self.registry, self.limits, self.connections.discard)
        self.connections.add(conn)
        return conn

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        # Let what clients already sent be read: it is written, not lost.
        await asyncio.sleep(STOP_DRAIN_SECONDS)
        attached = self.registry.close_all()
        for conn in list(self.connections):
            conn.close()
        self._pool.submit(self._nvml.close)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.unlink(self.cfg.socket)
        log.info(
            "stopped: %d runs left resumable (%d were connected); traces flushed",
            len(self.registry.sessions),
            attached,
        )
        self.notifier.close()

    # -- config -------------------------------------------------------------------------------

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = load_config(
                self.config_path,
                socket=self.flags.get("socket"),
                state_dir=self.flags.get("state_dir"),
                metrics_port=self.flags.get("metrics_port"),
                metrics_address=self.flags.get("metrics_address"),
            )
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
            self.notifier.ready(self.registry.describe())
            return
        kept = {k: getattr(self.cfg, k) for k in RESTART_ONLY if getattr(new, k) != getattr(self.cfg, k)}
        if kept:
            log.warning(
                "config: %s only change at a restart; keeping the running values", ", ".join(sorted(kept))
            )
            new = dataclasses.replace(new, **kept)
        changes = differences(self.cfg, new)
        self.cfg = new
        self.limits.reconfigure(new.limits)
        self.registry.reconfigure(new)
        logging.getLogger("epochwatch").setLevel(new.log_level.upper())
        source = self.config_path or "defaults"
        log.info("config reloaded from %s: %s", source, "; ".join(changes) if changes else "no changes")
        self.notifier.ready(self.registry.describe())

    # -- sampling -------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            interval = self.cfg.sampling.interval_seconds
            deadline = loop.time() + interval
            try:
                await self._tick(loop)
            except Exception:  # not CancelledError (a BaseException): the stop still stops the loop
                log.exception("sampling tick failed")
            await asyncio.sleep(max(0.05, deadline - loop.time()))

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        self.limits.log.report_dropped()
        self.registry.expire_unseen(now)
        sessions = self.registry.live()
        scan = now >= self._contention_due and any(s.samplers is not None for s in sessions)
        await self._sample(loop, sessions, scan)
        if scan:
            # A priming scan (nothing recent to compare with) is followed by a real one soon.
            primed = self._contention.latest is None
            self._contention_due = now + (1.0 if primed else self.cfg.sampling.contention_interval_seconds)

    def _first_sample(self, session: Session) -> None:
        task = asyncio.get_running_loop().create_task(self._sample_new(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sample_new(self, session: Session) -> None:
        """A first sample right at attach, so even the first epoch has peaks."""
        try:
            await self._sample(asyncio.get_running_loop(), [session], scan=False)
        except Exception:
            log.exception("run %s: first sample failed", session.run_id)

    async def _sample(self, loop: asyncio.AbstractEventLoop, sessions: list[Session], scan: bool) -> None:
        targets = [(s, s.samplers) for s in sessions if s.samplers is not None and not s.exited]
        if not targets:
            return
        results = await loop.run_in_executor(
            self._pool, _sample_all, [t[1] for t in targets], self._contention if scan else None
        )
        top = self.cfg.sampling.contention_top
        for (session, _), (sample, gone, changed) in zip(targets, results, strict=True):
            if session.finished:
                continue
            if changed:
                self.registry.stop_sampling(session, changed)
                continue
            if gone:
                self.registry.process_exited(session)
                continue
            if sample is not None:
                self.registry.take_sample(
                    session, sample, self._contention.for_run(session.pid, top, uid=session.uid)
                )

    # -- status and systemd ----------------------------------------------------------------------

    def _run_ended(self, session: Session) -> None:
        if self.metrics is not None:
            self.metrics.run_ended(session)

    def _update_status(self) -> None:
        text = self.registry.describe()
        if text != self._status_text:
            self._status_text = text
            self.notifier.status(text)

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            self._update_status()
            await asyncio.sleep(interval)


def _sample_all(
    samplers: list[Any], contention: ContentionScanner | None
) -> list[tuple[dict[str, Any] | None, bool, str]]:
    """On the sampling thread: one sample per run, (sample, gone, why it may not be sampled
    any more); and the contention scan."""
    import psutil

    if contention is not None:
        try:
            contention.scan(max_age=60.0)
        except Exception as exc:
            log.warning("contention scan failed: %s", exc)
    out: list[tuple[dict[str, Any] | None, bool, str]] = []
    for sampler in samplers:
        try:
            out.append((sampler.sample(), False, ""))
        except psutil.NoSuchProcess:
            out.append((None, True, ""))
        except ProcessChanged as exc:
            out.append((None, False, str(exc)))
        except Exception as exc:
            log.warning("run %s: sample failed: %s: %s", sampler.run_id, type(exc).__name__, exc)
            out.append((None, False, ""))
    return out


def _clear_stale_socket(path: str) -> None:
    """Remove a socket left by a killed daemon; refuse to take over a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartError(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listening: left over
        return
    finally:
        probe.close()
    raise StartError(f"another daemon is listening on {path}")


def _raise_fd_limit() -> None:
    """Every attached run holds a connection and a trace file: allow plenty."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
    except (ValueError, OSError):
        pass
