"""One ScienceWorld JVM per env: start with a bounded heap, detect death, restart, never leak the process.

The `scienceworld` package's own `ScienceWorldEnv` starts its JVM with an unbounded heap (gold-path generation
can take 2.7 GiB) and a py4j callback server we do not need, so we launch the bundled jar ourselves.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import weakref
from typing import Any

from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
from py4j.protocol import Py4JError

DEFAULT_HEAP = "1g"
JAVA_INSTALL_HINT = (
    "ScienceWorld runs on a Java 17 runtime, and none was found on PATH or in JAVA_HOME. Install one "
    "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; conda: `conda install -c conda-forge openjdk=17`) "
    "or point JAVA_HOME at an existing JDK/JRE."
)


class JavaMissingError(RuntimeError):
    """No Java runtime could be found to run the ScienceWorld simulator."""


def find_java() -> str:
    """Path of the `java` executable (JAVA_HOME first, then PATH); raise `JavaMissingError` with a fix if absent."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("java")
    if found is None:
        raise JavaMissingError(JAVA_INSTALL_HINT)
    return found


def _shutdown(gateway: JavaGateway | None, proc: subprocess.Popen | None) -> None:
    """Close the gateway and make sure the JVM process is gone (used by close() and the finalizer)."""
    if gateway is not None:
        try:
            gateway.shutdown()
        except Exception:  # noqa: BLE001 - the JVM may already be dead; we only want it gone
            pass
    if proc is not None and proc.poll() is None:
        try:  # py4j's die_on_exit JVM exits when its stdin sees a line / closes
            proc.stdin.write(b"\n")
            proc.stdin.flush()
            proc.stdin.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)


class ScienceWorldJVM:
    """A lazily started JVM hosting ScienceWorld's `PythonInterface`.

    `server` starts the JVM on first use. `close()` (and the finalizer, which also runs at interpreter exit)
    stops it. `restart()` replaces a dead JVM. `heap` is the `-Xmx` value (e.g. "1g", "512m").
    """

    def __init__(self, heap: str = DEFAULT_HEAP, jar_path: str | None = None) -> None:
        self.heap = heap
        self.jar_path = jar_path
        self._gateway: JavaGateway | None = None
        self._proc: subprocess.Popen | None = None
        self._server: Any = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0  # how many JVMs this object has launched (restarts included)

    @property
    def pid(self) -> int | None:
        """Process id of the running JVM, or None when not started."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """True when a JVM was started and its process is still running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def server(self) -> Any:
        """ScienceWorld's `PythonInterface` proxy; starts the JVM on first use."""
        if self._server is None:
            self.start()
        return self._server

    @property
    def gateway(self) -> JavaGateway:
        if self._gateway is None:
            self.start()
        return self._gateway  # type: ignore[return-value]

    def start(self) -> None:
        """Launch the bundled jar with a bounded heap and connect to it (about 0.5-1.5 s)."""
        if self._server is not None:
            return
        from scienceworld.constants import BASEPATH, JAR_PATH

        java = find_java()
        port, proc = launch_gateway(
            classpath=self.jar_path or JAR_PATH,
            die_on_exit=True,  # the JVM exits when this Python process goes away, even on SIGKILL
            cwd=BASEPATH,
            return_proc=True,
            java_path=java,
            javaopts=[f"-Xmx{self.heap}", "-XX:+UseSerialGC"],
        )
        gateway = JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc)
        self._gateway, self._proc = gateway, proc
        self._finalizer = weakref.finalize(self, _shutdown, gateway, proc)  # also runs at interpreter exit
        self._server = gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
        self.starts += 1

    def close(self) -> None:
        """Stop the JVM (idempotent)."""
        self._close(collect=True)

    def _close(self, collect: bool) -> None:
        running = self._finalizer is not None
        if self._finalizer is not None:
            self._finalizer()  # calls _shutdown once, then detaches
        self._finalizer = None
        self._gateway = self._proc = self._server = None
        if collect and running:
            # The closed gateway leaves py4j objects (member proxies, its output reader's pipes and lock) in
            # reference cycles. Collected later, at whatever allocation triggers it, they can be collected
            # inside CPython 3.11's AST constructor and crash it ("SystemError: AST constructor recursion
            # depth mismatch", seen in pytest's assertion rewriting after JVM restarts): collect them now.
            gc.collect()

    def restart(self) -> None:
        """Replace the JVM with a fresh one (used after it died)."""
        self.close()
        self.start()

    def __del__(self) -> None:  # belt and braces: the finalizer already covers garbage collection
        try:
            self._close(collect=False)
        except Exception:  # noqa: BLE001
            pass


JVM_ERRORS: tuple[type[BaseException], ...] = (Py4JError, ConnectionError, OSError, EOFError)
"""Exceptions that mean the JVM (or the socket to it) is gone."""
