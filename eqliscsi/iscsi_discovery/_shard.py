"""Run one asyncio batch over several processes: the client's CPU, not the network, limits it.

``validate_many`` spends ~0.35 ms of client CPU per target (login, two SCSI
commands, logout; a third of it the kernel's loopback TCP work) while tgt needs
~0.3 ms, so one Python process keeps one core busy and the batch waits on it
(docs/performance.md, "iSCSI client", session 5).  Here a batch
is cut into interleaved shards; the first runs in this process, each other one in a
``fork()`` child on its own event loop, and the results come back in order.

Why fork and not ``multiprocessing``: a spawned interpreter must import the package
again (~150-200 ms of CPU), more than a 500-target batch saves.  A forked child
starts with everything imported.  What makes forking from inside a running event
loop safe here:

* the child never touches the parent's loop or sockets: it runs its shard with
  ``asyncio.run`` in a fresh thread (the running-loop marker is per thread), then
  leaves with ``os._exit`` so no inherited finaliser or ``atexit`` hook runs;
* results travel over a pipe, pickled with exceptions rebuilt from their ``args`` and
  attributes (the typed ``IscsiError`` subclasses take keyword constructors that
  plain pickling cannot call); tracebacks do not travel;
* a child that dies or sends garbage costs nothing but time: its shard is run again
  in this process, so a bug shows up as the same exception it would without shards;
* on cancellation every child is killed and reaped before the exception propagates.

One caveat: ``fork()`` copies only the calling thread.  asyncio resolves host names
in a thread pool; a fork while such a lookup runs could leave a C library lock held
in the child.  Portals given as IP addresses (the usual case: EqualLogic group and
member IPs) never use that pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import pickle
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

__all__ = ["dumps", "loads", "run_sharded"]

T = TypeVar("T")
R = TypeVar("R")


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException):
            return _rebuild_exception, (type(obj), obj.args, dict(vars(obj)))
        return NotImplemented


def dumps(value: object) -> bytes:
    """Pickle ``value``; exceptions keep their type, ``args`` and attributes."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return out.getvalue()


def loads(data: bytes) -> Any:
    """Unpickle what :func:`dumps` wrote; only ever fed by our own children."""
    return pickle.loads(data)  # noqa: S301 - bytes from a pipe to a child we forked


def _child_main(write_fd: int, work: Callable[[], Awaitable[Any]]) -> None:
    """Body of a forked child: run ``work`` on a new loop, send its pickled result."""
    code = 1
    try:
        box: list[bytes] = []

        def runner() -> None:
            box.append(dumps(asyncio.run(_call(work))))

        thread = threading.Thread(target=runner, name="eqliscsi-shard")
        thread.start()
        thread.join()
        if box:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(box[0])
            code = 0
    finally:
        os._exit(code)


async def _call(work: Callable[[], Awaitable[R]]) -> R:
    return await work()


class _Child:
    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.read_fd = read_fd
        self.reaped = False

    @classmethod
    def fork(cls, work: Callable[[], Awaitable[Any]]) -> _Child:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which leaves by os._exit
            os.close(read_fd)
            _child_main(write_fd, work)
        os.close(write_fd)
        return cls(pid, read_fd)

    async def collect(self) -> bytes:
        """Everything the child wrote, once it closed the pipe; then reap it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        chunks: list[bytes] = []
        os.set_blocking(self.read_fd, False)

        def readable() -> None:
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                chunk = b""
                if not done.done():
                    done.set_exception(exc)
            if chunk:
                chunks.append(chunk)
            elif not done.done():
                done.set_result(None)

        loop.add_reader(self.read_fd, readable)
        try:
            await done
        finally:
            loop.remove_reader(self.read_fd)
            os.close(self.read_fd)
        self.reap()
        return b"".join(chunks)

    def reap(self, *, kill: bool = False) -> None:
        if self.reaped:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        # The child closed its end of the pipe right before os._exit (or was killed).
        os.waitpid(self.pid, 0)
        self.reaped = True


async def run_sharded(
    items: Sequence[T],
    work: Callable[[Sequence[T]], Awaitable[list[R]]],
    *,
    processes: int,
) -> list[R]:
    """``work(items)``, computed as ``processes`` interleaved shards; results in order.

    ``work`` must return one result per item, in order.  With ``processes <= 1``, or
    without ``os.fork``, it is simply awaited here.
    """
    n = min(processes, len(items))
    if n <= 1 or not hasattr(os, "fork"):
        return await work(items)
    shards = [items[i::n] for i in range(n)]
    children: list[_Child] = []
    try:
        for shard in shards[1:]:
            children.append(_Child.fork(functools.partial(work, shard)))
        results: list[list[R]] = [await work(shards[0])]
        for child, shard in zip(children, shards[1:], strict=True):
            try:
                got = loads(await child.collect())
                if not isinstance(got, list) or len(got) != len(shard):
                    raise ValueError("a shard came back incomplete")
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                got = await work(shard)  # the child died: do its share here
            results.append(got)
    finally:
        for child in children:
            child.reap(kill=True)
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    for i, shard_results in enumerate(results):
        out[i::n] = shard_results
    return out
