"""The one entry point of every remote: ``run_action("ds.stat")``.

A remote under ``remotes/{datastore,tm}/eqliscsi/`` is three lines that call
:func:`main`.  Here, and only here, exceptions become exit statuses
(:func:`eqliscsi.errors.exit_code_for`) and text for oned:

* an expected error (:class:`~eqliscsi.errors.EqliscsiError`) prints its one sentence
  in the caller's framing (:mod:`eqliscsi.opennebula.output`);
* anything else is a bug: oned gets one line naming the exception type and the log
  file, the traceback goes only to that file.  No traceback ever reaches oned,
  because from 6.2 every stderr line becomes part of the image or VM error.

Log lines (``INFO:``/``DEBUG:``) are buffered and written to stderr at the end, and
also appended to the log file; on a failure under 6.2-6.10 they go to the file only.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eqliscsi.errors import EqliscsiError, exit_code_for
from eqliscsi.opennebula.args import DsCall, OneVersion, parse_ds_call, read_version
from eqliscsi.opennebula.config import DEFAULT_CONF_NAMES, Resolved, load_conf, resolve
from eqliscsi.opennebula.driver_action import DriverAction, parse_driver_action
from eqliscsi.opennebula.errors import BadCallError, BadDocumentError, UnknownActionError
from eqliscsi.opennebula.output import (
    Dialect,
    dialect_for,
    render_error,
    render_log,
    render_success,
)
from eqliscsi.secret import redact

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    import logging
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import BinaryIO, NoReturn, TextIO

    from eqliscsi.opennebula.args import MigrateCall, TmCall
    from eqliscsi.opennebula.driver_action import Image
    from eqliscsi.opennebula.output import Result

__all__ = ["ACTIONS", "ActionContext", "conf_file", "main", "run_action"]

# "kind.action" -> (module, function).  Imported lazily: a remote pays only for its
# own action.  An action is listed only once it is implemented.
ACTIONS: dict[str, tuple[str, str]] = {
    "ds.stat": ("eqliscsi.opennebula.actions.ds", "stat"),
    "ds.monitor": ("eqliscsi.opennebula.actions.ds_volumes", "monitor"),
    "ds.rm": ("eqliscsi.opennebula.actions.ds_volumes", "rm"),
    "ds.clone": ("eqliscsi.opennebula.actions.ds_volumes", "clone"),
    "ds.mkfs": ("eqliscsi.opennebula.actions.ds_volumes", "mkfs"),
    "ds.cp": ("eqliscsi.opennebula.actions.ds_volumes", "cp"),
    "ds.snap_delete": ("eqliscsi.opennebula.actions.ds_volumes", "snap_delete"),
    "ds.snap_revert": ("eqliscsi.opennebula.actions.ds_volumes", "snap_revert"),
    "ds.snap_flatten": ("eqliscsi.opennebula.actions.ds_volumes", "snap_flatten"),
    "tm.clone": ("eqliscsi.opennebula.actions.tm", "clone"),
    "tm.ln": ("eqliscsi.opennebula.actions.tm", "ln"),
    "tm.mv": ("eqliscsi.opennebula.actions.tm", "mv"),
    "tm.mvds": ("eqliscsi.opennebula.actions.tm", "mvds"),
    "tm.delete": ("eqliscsi.opennebula.actions.tm", "delete"),
    "tm.premigrate": ("eqliscsi.opennebula.actions.tm", "premigrate"),
    "tm.postmigrate": ("eqliscsi.opennebula.actions.tm", "postmigrate"),
    "tm.failmigrate": ("eqliscsi.opennebula.actions.tm", "failmigrate"),
    "tm.resize": ("eqliscsi.opennebula.actions.tm", "resize"),
    "tm.cpds": ("eqliscsi.opennebula.actions.tm", "cpds"),
    "tm.snap_create": ("eqliscsi.opennebula.actions.tm", "snap_create"),
    "tm.snap_delete": ("eqliscsi.opennebula.actions.tm", "snap_delete"),
    "tm.snap_revert": ("eqliscsi.opennebula.actions.tm", "snap_revert"),
}


@dataclass(eq=False)  # compared by identity; a generated __eq__ costs start-up (eqliscsi._record)
class ActionContext:
    """Everything an action function gets; it does no argv/stdin/version work itself."""

    name: str
    call: DsCall | TmCall | MigrateCall
    dialect: Dialect
    remotes_dir: str
    environ: Mapping[str, str]
    driver_action: DriverAction | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)
    # Secrets the action loaded: the runner redacts them from any error text as a
    # last line of defence (messages should never contain them in the first place).
    secrets: list[bytes] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.logs.append(("INFO", message))

    def debug(self, message: str) -> None:
        self.logs.append(("DEBUG", message))

    def image(self) -> Image:
        if self.driver_action is None or self.driver_action.image is None:
            raise BadDocumentError(f"{self.name} needs an IMAGE in the driver document.")
        return self.driver_action.image

    def config(self, *, with_image: bool = True, encrypted_attrs: bool = False) -> Resolved:
        """eqliscsi.conf → datastore template → image template (see config.py).

        ``encrypted_attrs``: oned hands this action DATASTORE_ENCRYPTED_ATTR values
        still encrypted (clone, save-as: §6.1), so prefer the conf file's password.
        """
        conf = load_conf(conf_file(self))
        ds_tpl = self.driver_action.datastore.template if self.driver_action else None
        img = self.driver_action.image if self.driver_action else None
        resolved = resolve(
            conf,
            ds_tpl,
            img.template if (img and with_image) else None,
            template_password_usable=not encrypted_attrs,
        )
        for secret in resolved.config.secrets():
            if secret is not None:
                self.secrets.append(secret.reveal())
        for notice in resolved.notices:
            self.info(notice)
        return resolved


# Paths here are str, not pathlib.Path: pathlib (with urllib.parse, ipaddress, fnmatch)
# costs a remote ~3 ms of its start-up budget (docs/performance.md).


def conf_file(ctx: ActionContext) -> str:
    """``$EQLISCSI_CONF``, else ``remotes/datastore/eqliscsi/eqliscsi.conf`` (or the
    ``eqlscsi.conf`` spelling when only that one exists)."""
    explicit = ctx.environ.get("EQLISCSI_CONF")
    if explicit:
        return explicit
    base = os.path.join(ctx.remotes_dir, "datastore", "eqliscsi")
    first = os.path.join(base, DEFAULT_CONF_NAMES[0])
    second = os.path.join(base, DEFAULT_CONF_NAMES[1])
    return second if (not os.path.exists(first) and os.path.exists(second)) else first


def _log_file(environ: Mapping[str, str]) -> str:
    explicit = environ.get("EQLISCSI_LOG_FILE")
    if explicit:
        return explicit
    one_log = "/var/log/one"
    if os.access(one_log, os.W_OK):
        return os.path.join(one_log, "eqliscsi.log")
    import tempfile  # noqa: PLC0415 - only off a front-end; start-up is paid per oned call

    return os.path.join(tempfile.gettempdir(), "eqliscsi.log")


def _append_log(path: str, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        return False
    return True


def _remotes_dir(argv0: str, environ: Mapping[str, str]) -> str:
    explicit = environ.get("EQLISCSI_REMOTES_DIR")
    if explicit:
        return explicit
    # remotes/<datastore|tm>/eqliscsi/<action>
    d = os.path.dirname
    return d(d(d(os.path.abspath(argv0))))


def _stdin_reader(stdin: BinaryIO) -> Callable[[int], bytes]:
    def read(limit: int) -> bytes:
        try:
            if stdin.isatty():
                raise BadCallError(
                    "The driver document was expected on stdin but stdin is a terminal; "
                    "oned pipes it, so run this remote the way oned does."
                )
        except (AttributeError, ValueError, io.UnsupportedOperation):
            pass
        return stdin.read(limit)

    return read


def run_action(
    name: str,
    argv: list[str] | None = None,
    *,
    argv0: str | None = None,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one action as oned called it; return the exit status.  Never raises."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    source = sys.stdin.buffer if stdin is None else stdin
    kind, _, action = name.partition(".")
    version: OneVersion | None = None
    dialect = dialect_for(None)
    ctx: ActionContext | None = None
    log_path = _log_file(env)
    # datetime's isoformat(timespec="seconds") in UTC, without importing datetime.
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    restore_logging: Callable[[], None] = lambda: None  # noqa: E731
    try:
        remotes = _remotes_dir(argv0 or sys.argv[0], env)
        version = read_version(remotes)
        dialect = dialect_for(version)
        target = ACTIONS.get(name)
        if target is None:
            raise UnknownActionError(
                f"Action {name} is not implemented by this eqliscsi version; remove its "
                "remote or upgrade eqliscsi."
            )
        call: DsCall | TmCall | MigrateCall
        driver_action = None
        if kind == "ds":
            call = parse_ds_call(action, args, _stdin_reader(source), version)
            dialect = dialect_for(version, call.convention)
            driver_action = parse_driver_action(call.document)
        elif kind == "tm":
            from eqliscsi.opennebula.args import parse_tm_call  # noqa: PLC0415 - TM only

            call = parse_tm_call(action, args, _stdin_reader(source), version)
        else:
            raise UnknownActionError(f"Action kind {kind!r} is neither ds nor tm.")
        ctx = ActionContext(name, call, dialect, remotes, env, driver_action)
        restore_logging = _capture_library_logs(ctx)
        module = importlib.import_module(target[0])
        func: Callable[[ActionContext], Result] = getattr(module, target[1])
        result = func(ctx)
        if result is None:  # an action without a result prints nothing
            from eqliscsi.opennebula._results import NoOutput  # noqa: PLC0415 - see output

            result = NoOutput()
        text = render_success(action, result, dialect)
        _flush_logs(ctx, err, log_path, stamp, to_stderr=True)
        out.write(text)
        out.flush()
        return 0
    except EqliscsiError as exc:
        message = redact(str(exc), ctx.secrets if ctx is not None else ())
        if ctx is not None:
            _flush_logs(ctx, err, log_path, stamp, to_stderr=dialect.logs_on_failure)
        _append_log(log_path, f"{stamp} {name} ERROR {exc.reference}: {message}\n")
        err.write(render_error(message, dialect))
        err.flush()
        return int(exit_code_for(exc))
    except Exception as exc:  # a bug: one line for oned, the traceback in the log only
        if ctx is not None:
            _flush_logs(ctx, err, log_path, stamp, to_stderr=dialect.logs_on_failure)
        import traceback  # noqa: PLC0415 - only for bugs

        logged = _append_log(log_path, f"{stamp} {name} INTERNAL ERROR\n{traceback.format_exc()}\n")
        where = f"details in {log_path}" if logged else "set EQLISCSI_LOG_FILE to keep details"
        err.write(
            render_error(
                f"eqliscsi {name} failed with an internal error ({type(exc).__name__}); "
                f"{where}, please report it.",
                dialect,
            )
        )
        err.flush()
        return int(exit_code_for(exc))
    finally:
        restore_logging()


def _context_handler(ctx: ActionContext) -> logging.Handler:
    import logging  # noqa: PLC0415 - see _capture_library_logs

    class _ContextHandler(logging.Handler):
        """Library log records (eqliscsi.san …) become the action's own log lines."""

        def emit(self, record: logging.LogRecord) -> None:
            level = "DEBUG" if record.levelno < logging.INFO else "INFO"
            ctx.logs.append((level, f"{record.name}: {record.getMessage()}"))

    return _ContextHandler(logging.DEBUG)


def _route_eqliscsi_logger(ctx: ActionContext) -> Callable[[], None]:
    import logging  # noqa: PLC0415 - see _capture_library_logs

    logger = logging.getLogger("eqliscsi")
    handler = _context_handler(ctx)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def restore() -> None:
        # run_action is also called in-process (tests, the CLI): leave logging as found.
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    return restore


class _RouteWhenLoggingImported:
    """A ``sys.meta_path`` entry that routes the eqliscsi logger once logging is loaded.

    ``import logging`` (threading, traceback, string, weakref) costs several ms of the
    per-action start-up budget (docs/performance.md), and on the broker path nothing
    logs unless something fails or retries (``eqliscsi.san._lazylog``).  So the runner
    does not import it: this finder sees the first ``import logging`` of the process,
    whoever makes it (a lazy logger, or a module such as the direct SSH session that
    imports logging eagerly), lets the normal finders load it, and installs the
    handler right after the module has executed, before anyone can log a record.
    """

    def __init__(self, ctx: ActionContext) -> None:
        self.ctx = ctx
        self.restore: Callable[[], None] | None = None

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "logging":
            return None
        self.remove()
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                # A duck-typed loader: subclassing importlib.abc.Loader would import
                # importlib.abc, which costs more than logging itself.
                spec.loader = _ThenRoute(spec.loader, self._loaded)  # type: ignore[assignment]
                return spec
        return None  # let the import fail as it would have

    def _loaded(self) -> None:
        self.restore = _route_eqliscsi_logger(self.ctx)

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def undo(self) -> None:
        self.remove()
        if self.restore is not None:
            self.restore()


class _ThenRoute:
    """Loads a module with its own loader, then calls ``after`` (see above)."""

    def __init__(self, loader: Loader, after: Callable[[], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its real loader (linecache and inspect ask it for source).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.after()


def _capture_library_logs(ctx: ActionContext) -> Callable[[], None]:
    # Without a handler, Python's last-resort handler prints warnings to stderr, and
    # 6.2-6.10 take the whole stderr of a failed action as its error message: route
    # them through the action's log, which the runner writes where the dialect wants.
    if "logging" in sys.modules:  # in-process callers, TM actions: route at once
        return _route_eqliscsi_logger(ctx)
    hook = _RouteWhenLoggingImported(ctx)
    sys.meta_path.insert(0, hook)
    return hook.undo


def _flush_logs(
    ctx: ActionContext, err: TextIO, log_path: str, stamp: str, *, to_stderr: bool
) -> None:
    if not ctx.logs:
        return
    lines = "".join(render_log(level, ctx.name, msg) for level, msg in ctx.logs)
    if to_stderr:
        err.write(lines)
    _append_log(log_path, "".join(f"{stamp} {line}" for line in lines.splitlines(True)))
    ctx.logs.clear()


def main(name: str) -> NoReturn:
    """What a remote calls: run ``name`` with this process's argv/stdin and exit."""
    sys.exit(run_action(name))
