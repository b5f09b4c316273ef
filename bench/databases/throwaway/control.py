"""Fault injection's hold on a database server bench started (bench.databases.backend.ServerControl): stop it and
start it again on the same port with the same data, or freeze and thaw its whole process tree."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil

Started = tuple[subprocess.Popen[bytes], int]  # the server process and its port


class RestartableServer:
    """`process` is always the server now running. Restarts run on one keeper thread that lives until close():
    the kernel's parent-death signal (bench.system.processes.die_with_parent) follows the *thread* that started a
    child, so a server restarted from the fault injector's short-lived thread would be killed when it ends."""

    def __init__(
        self,
        started: Started,
        start_on: Callable[[int], Started],
        stop: Callable[[subprocess.Popen[bytes]], object],
    ) -> None:
        self.process, self.port = started
        self._start_on = start_on
        self._stop = stop
        self._frozen: list[psutil.Process] = []  # what pause() stopped, for resume()
        self._keeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="server-keeper")

    def stop(self) -> None:
        self.resume()  # a frozen server cannot shut down
        self._stop(self.process)

    def start(self) -> None:
        if self.process.poll() is None:
            return
        self.process, _ = self._keeper.submit(self._start_on, self.port).result()

    def pause(self) -> None:
        if self.process.poll() is None and not self._frozen:
            self._frozen = freeze_tree(self.process.pid)

    def resume(self) -> None:
        frozen, self._frozen = self._frozen, []
        thaw(frozen)

    def close(self) -> None:
        """Stop the server for good (whichever process runs now) and the keeper thread."""
        try:
            self.stop()
        finally:
            self._keeper.shutdown(wait=True)


def freeze_tree(pid: int) -> list[psutil.Process]:
    """SIGSTOP `pid` and then every process below it; returns them, for thaw(). The whole tree, not the process
    group: each PostgreSQL backend calls setsid, so the postmaster's group alone would leave them answering.
    The parent goes first: frozen, it starts no new child while the others are stopped."""
    frozen: list[psutil.Process] = []
    try:
        root = psutil.Process(pid)
        root.send_signal(signal.SIGSTOP)
        frozen.append(root)
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGSTOP)
                frozen.append(child)
    except psutil.NoSuchProcess:
        pass
    return frozen


def thaw(frozen: list[psutil.Process]) -> None:
    for process in reversed(frozen):  # the children first, then the parent that supervises them
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGCONT)
