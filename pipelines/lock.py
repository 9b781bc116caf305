"""OutputLock: one running `embedgen generate` per --output; a killed run's lock is detected as stale and taken over."""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import threading
import time

from transforms.config import ConfigError

__all__ = ["LOCK_FILE", "OutputLock", "STALE_AFTER_SECONDS", "HEARTBEAT_SECONDS"]

_LOGGER = logging.getLogger(__name__)

LOCK_FILE = "_embedgen.lock"
# gs:// locks: the holder rewrites the lock object this often; one not rewritten for STALE_AFTER_SECONDS is stale.
HEARTBEAT_SECONDS = 60.0
STALE_AFTER_SECONDS = 600.0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}" + (
        f" ({holder['command']})" if holder.get("command") else ""
    )


class OutputLock:
    """A lock file ``<output>/_embedgen.lock`` naming the holder (pid, host, start time, command).

    Local outputs: the file is held with ``fcntl.flock`` for the whole run. The kernel drops that lock when the
    holder dies, however it dies (SIGKILL included), so a lock file that is present but not flock-held is the
    stale lock of a killed run: it is reported and taken over. Two launches cannot both win: the flock decides.

    ``gs://`` outputs: Cloud Storage has no advisory locks and Beam's FileSystems no conditional write, so the lock
    is an object whose ``heartbeat`` field the launching process rewrites every HEARTBEAT_SECONDS; an object not
    rewritten for STALE_AFTER_SECONDS is stale. Checking and writing are two requests: two launches within the same
    second can both pass. It guards against the usual mistake (a second scheduled run while the first still runs),
    not against a race.
    """

    def __init__(self, output: str, command: str = "embedgen generate"):
        self._output = output
        self._command = command
        self._remote = "://" in output
        self._handle = None
        self._stop = threading.Event()
        self._thread = None
        self.stale: dict | None = None  # the holder of a stale lock that was taken over

    @property
    def path(self) -> str:
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(self._output, LOCK_FILE) if self._remote else os.path.join(self._output, LOCK_FILE)

    def _record(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _now(),
            "heartbeat": _now(),
            "command": self._command,
        }

    def acquire(self) -> OutputLock:
        """Take the lock or raise ConfigError naming the holder; logs a warning when a stale lock is taken over."""
        if self._remote:
            self._acquire_remote()
        else:
            self._acquire_local()
        if self.stale is not None:
            _LOGGER.warning(
                "--output %s: took over the stale lock of an earlier run that did not end cleanly (%s)",
                self._output,
                _describe(self.stale),
            )
        return self

    def _acquire_local(self) -> None:
        import fcntl

        try:
            os.makedirs(self._output, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--output {self._output} is not a writable directory: {err}") from None
        while True:
            try:
                handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
            except OSError as err:
                raise ConfigError(f"--output {self._output} is not a writable directory: {err}") from None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = _parse(handle.read())
                handle.close()
                raise ConfigError(
                    f"--output {self._output} is in use by another embedgen run ({_describe(holder)}); wait for it "
                    f"to finish or choose another --output (lock: {self.path})"
                ) from None
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            handle.close()  # the file was removed by a run that ended between our open and our flock: again
        handle.seek(0)
        earlier = handle.read()
        if earlier.strip():
            self.stale = _parse(earlier)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(self._record()) + "\n")
        handle.flush()
        self._handle = handle

    def _acquire_remote(self) -> None:
        from apache_beam.io.filesystems import FileSystems

        if FileSystems.exists(self.path):
            with FileSystems.open(self.path) as handle:
                holder = _parse(handle.read().decode("utf-8", errors="replace"))
            age = _age_seconds(holder.get("heartbeat"))
            if age is not None and age < STALE_AFTER_SECONDS:
                raise ConfigError(
                    f"--output {self._output} is in use by another embedgen run ({_describe(holder)}, last heartbeat "
                    f"{age:.0f} s ago); wait for it to finish or choose another --output (lock: {self.path}; it counts "
                    f"as stale {STALE_AFTER_SECONDS:.0f} s after its last heartbeat)"
                )
            self.stale = holder
        self._record_started = self._record()
        self._write_remote()
        self._thread = threading.Thread(target=self._heartbeat, name="embedgen-lock-heartbeat", daemon=True)
        self._thread.start()

    def _write_remote(self) -> None:
        from apache_beam.io.filesystems import FileSystems

        record = dict(self._record_started, heartbeat=_now())
        with FileSystems.create(self.path) as handle:
            handle.write((json.dumps(record) + "\n").encode("utf-8"))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._write_remote()
            except Exception as err:  # noqa: BLE001 - a missed heartbeat must not stop the run
                _LOGGER.warning("could not refresh the lock %s: %s", self.path, err)

    def release(self) -> None:
        """Remove the lock file (it is also released by the kernel if the process dies)."""
        if self._remote:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            from apache_beam.io.filesystems import FileSystems

            try:
                FileSystems.delete([self.path])
            except Exception as err:  # noqa: BLE001
                _LOGGER.warning("could not remove the lock %s: %s", self.path, err)
            return
        if self._handle is not None:
            try:
                os.unlink(self.path)  # while still holding the flock: no one can take it in between
            except FileNotFoundError:
                pass
            self._handle.close()
            self._handle = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _parse(text: str) -> dict:
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def _age_seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return time.time() - then.timestamp()
