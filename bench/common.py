"""Helpers the benchmarks share: child processes, servers under test, data files, HTTP, stats.

Every benchmark starts its servers as children in their own process groups (killed by pid on
exit, Ctrl-C, SIGTERM or SIGHUP), in a temp folder it removes afterwards, and compares
ReadingRoom with Orthanc on the same machine in the same run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")
CORPUS_DIRS = (Path(os.environ.get("READINGROOM_CORPUS", "/work/shared/corpus")),)
START_TIMEOUT = 120.0  # seconds for a server to come up
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL


# --- child processes ---------------------------------------------------------------------


class Children:
    """Every long-running child, each in its own process group, killed by its pid at exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def start(
        self, argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it does not exit in time."""
        if proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        # Whatever the leader left behind in its group goes too.
        signal_group(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                self.stop(proc)
        self._procs.clear()


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_checked(argv: Sequence[str], env: dict[str, str], timeout: float) -> str:
    """Run a short command to completion; raise with its output if it fails."""
    result = subprocess.run(
        list(argv),
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} ... exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not come up within {START_TIMEOUT:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def dcmtk_env() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP unwind like Ctrl-C so the finally blocks stop every child.

    SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then installs
    no handler of its own."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- HTTP ----------------------------------------------------------------------------------


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def http_up(url: str) -> bool:
    try:
        http_json(url)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return True


def http_answers(url: str) -> bool:
    """True once anything answers HTTP at `url` (any status, 401 included)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str
    seconds: float


class HttpClient:
    """One persistent HTTP/1.1 connection (keep-alive, TCP_NODELAY), timed per request.

    The same client code talks to both servers, so client overhead is equal on both sides.
    The clock runs from sending the request to having read the whole body.
    """

    def __init__(self, port: int, headers: dict[str, str] | None = None, timeout=60.0) -> None:
        self.port = port
        self.headers = headers or {}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                start = time.perf_counter()
                conn.request(method, path, body=body, headers=all_headers)
                response = conn.getresponse()
                data = response.read()
                seconds = time.perf_counter() - start
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: reconnect once, untimed.
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return Reply(response.status, data, response.getheader("Content-Type", ""), seconds)
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)


def multipart_related(parts: Sequence[bytes], boundary: str) -> bytes:
    """A multipart/related body of application/dicom parts (STOW-RS)."""
    chunks = []
    for part in parts:
        chunks += [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            part,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


# --- ReadingRoom -------------------------------------------------------------------------------


def readingroom_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "REDIS_URL" and k != "DATABASE_URL" and not k.startswith(("DICOM_", "READINGROOM_"))
    }
    env.update(
        READINGROOM_DATA_DIR=str(data_dir),
        SECRET_KEY="bench",
        TCP_NODELAY="1",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


BENCH_ADMIN = """
from django.contrib.auth import get_user_model
from accounts.models import Organization
Organization.objects.get_or_create(
    slug="bench",
    defaults={"name": "Bench Hospital", "kind": "sending_facility", "us_state": "GA"},
)
User = get_user_model()
user, _ = User.objects.get_or_create(username="bench", defaults={"email": "bench@example.org"})
user.is_superuser = True
user.is_staff = True
user.set_unusable_password()
user.save()
"""


def bench_admin_token(env: dict[str, str]) -> str:
    """A platform admin `bench` (sees every study) and a fresh API token for it.

    Also makes sure the sending organisation `bench` exists (STOW-RS files uploads under it).
    """
    manage = [PYTHON, str(ROOT / "manage.py")]
    run_checked([*manage, "shell", "-c", BENCH_ADMIN], env, timeout=120)
    out = run_checked([*manage, "create_api_token", "bench", "--name", "bench"], env, timeout=120)
    return out.strip().splitlines()[-1].strip()


@dataclass
class ReadingRoomHttp:
    proc: subprocess.Popen
    port: int
    dicom_port: int
    log: Path
    server: str  # what answers HTTP, from the log


def start_readingroom_serve(children: Children, env: dict[str, str], log: Path) -> ReadingRoomHttp:
    """`manage.py serve` (daphne + the DICOM SCP in one process) on free ports."""
    port, dicom_port = free_port(), free_port()
    env = {**env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), "DICOM_PORT": str(dicom_port)}
    proc = children.start([PYTHON, str(ROOT / "manage.py"), "serve"], env, log, ROOT)
    wait_until(
        lambda: http_answers(f"http://127.0.0.1:{port}/dicomweb/studies?limit=1"),
        "ReadingRoom serve",
        proc,
        log,
    )
    return ReadingRoomHttp(proc, port, dicom_port, log, "daphne (ASGI, manage.py serve)")


def migrate(env: dict[str, str]) -> None:
    run_checked([PYTHON, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env, timeout=600)


# --- Orthanc -------------------------------------------------------------------------------


@dataclass
class OrthancProcess:
    proc: subprocess.Popen
    http_port: int
    dicom_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def start_orthanc_process(
    children: Children,
    folder: Path,
    log: Path,
    *,
    aet: str = "ORTHANC",
    plugins: Sequence[str] = (),
    extra: dict | None = None,
) -> OrthancProcess:
    """Orthanc with its own storage and index under `folder`, on free ports, HTTP up.

    `plugins` are file names under /usr/share/orthanc/plugins (e.g. libOrthancDicomWeb.so).
    Orthanc has no bind address: it listens on every interface, so it is only talked to on
    127.0.0.1 and keeps RemoteAccessAllowed off.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAet": aet,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "DicomCheckCalledAet": False,
        "Plugins": [str(ORTHANC_PLUGINS / name) for name in plugins],
        **(extra or {}),
    }
    for name in plugins:
        if not (ORTHANC_PLUGINS / name).is_file():
            raise SystemExit(f"Orthanc plugin {name} missing: apt-get install orthanc-dicomweb")
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = dcmtk_env()  # Orthanc is dcmtk-based: TCP_NODELAY=1 applies to it too
    proc = children.start([ORTHANC, str(config_path)], env, log, folder)
    orthanc = OrthancProcess(proc, http_port, dicom_port, log)
    wait_until(lambda: http_up(f"{orthanc.url}/system"), "Orthanc HTTP", proc, log)
    return orthanc


def orthanc_version(orthanc: OrthancProcess) -> str:
    try:
        system = http_json(f"{orthanc.url}/system")
        plugins = http_json(f"{orthanc.url}/plugins")
    except (OSError, ValueError):
        return "?"
    versions = []
    for name in plugins:
        with contextlib.suppress(OSError, ValueError):
            versions.append(f"{name} {http_json(f'{orthanc.url}/plugins/{name}')['Version']}")
    return f"Orthanc {system.get('Version', '?')}" + (
        f" ({', '.join(versions)})" if versions else ""
    )


# --- PostgreSQL ----------------------------------------------------------------------------


def recreate_database(database_url: str, drop_only: bool = False) -> None:
    """Drop and (unless drop_only) create the benchmark database, for a clean index."""
    import psycopg
    from psycopg import sql

    parsed = urllib.parse.urlparse(database_url)
    name = parsed.path.lstrip("/")
    if not name or parsed.scheme not in ("postgres", "postgresql"):
        raise SystemExit(
            f"--database-url must be postgres://USER@HOST:PORT/DBNAME, got {database_url}"
        )
    admin_url = urllib.parse.urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def finish_run(clients, children: Children, args, base: Path) -> None:
    """End of a benchmark run: close HTTP clients, stop the servers, drop the benchmark
    database and the temp folder unless --keep."""
    import shutil

    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    children.stop_all()
    if args.database_url and not args.keep:
        with contextlib.suppress(Exception):
            recreate_database(args.database_url, drop_only=True)
    if args.keep:
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def package_version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --- test data -----------------------------------------------------------------------------


def pydicom_data_dirs() -> list[Path]:
    """pydicom's own test files and pydicom-data's files, as installed (no download)."""
    import pydicom

    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    with contextlib.suppress(ImportError):
        import data_store

        folders.append(Path(data_store.__file__).parent / "data")
    return folders


def find_dicom(name: str) -> Path | None:
    """A real DICOM file by name: the shared corpus first (absent on CI), then the files
    pydicom and pydicom-data install. None when neither has it."""
    for folder in (*CORPUS_DIRS, *pydicom_data_dirs()):
        if (folder / name).is_file():
            return folder / name
    return None


# --- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, no interpolation."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def load_average() -> str:
    with contextlib.suppress(OSError):
        one, five, fifteen = os.getloadavg()
        return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"
    return "?"
