"""What a remote on the broker path imports, and that deferring logging loses no record.

Each test runs a fresh interpreter (``sys.executable``, the checkout on ``sys.path``):
what matters is the state of a process that oned just started, which an in-process
test cannot see because pytest has imported everything already.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from eqliscsi._lazyre import LazyPattern

from .child import ROOT, run_child

# Modules the broker path must not load: each costs ms of the per-action budget
# (docs/performance.md, "Remote start-up"), or drags in the SSH stack.
NOT_ON_THE_BROKER_PATH = (
    "asyncio",
    "asyncssh",
    "construct",
    "rich",
    "click",
    "ssl",
    "logging",
    "subprocess",
    "tempfile",
    "hashlib",
    "signal",
    "datetime",
    "traceback",
    "threading",
    # The broker client uses _socket: socket's enum conversions and selectors cost ~2.5 ms.
    "socket",
    "selectors",
    # typing (~3 ms) and inspect with ast/dis/tokenize (~5 ms; dataclasses imports it,
    # see eqliscsi/__init__.py).  pathlib (~3 ms) and base64 go with them.
    "typing",
    "inspect",
    "ast",
    "dis",
    "pathlib",
    "base64",
)


# (remote, modules it imports before its first CLI command, modules it may also import)
PATHS = [
    pytest.param(
        ("eqliscsi.opennebula.runner", "eqliscsi.opennebula.actions.ds_volumes"),
        (),
        id="ds-volumes",
    ),
    pytest.param(
        # TM actions run iscsiadm on hosts over ssh (subprocess, with its threading), but
        # only clone/ln load the native iSCSI client and asyncio, inside check_target.
        ("eqliscsi.opennebula.runner", "eqliscsi.opennebula.actions.tm"),
        ("subprocess", "threading", "signal", "selectors"),
        id="tm",
    ),
]


@pytest.mark.parametrize(("modules", "allowed"), PATHS)
def test_broker_path_imports_nothing_heavy(
    modules: tuple[str, ...], allowed: tuple[str, ...], tmp_path: Path
) -> None:
    code = f"""
        import importlib, json, sys
        for name in {list(modules)!r} + ["eqliscsi.opennebula.san_link",
                                         "eqliscsi.san.broker_common",
                                         "eqliscsi.san.broker_sync"]:
            importlib.import_module(name)
        # A module eqliscsi deferred (eqliscsi._lazy.defer_import) is a stand-in until
        # used: only a real module object counts as imported.
        print(json.dumps(sorted(m for m in {list(NOT_ON_THE_BROKER_PATH)!r}
                                if type(sys.modules.get(m)) is type(sys))))
    """
    done = run_child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert [m for m in json.loads(done.stdout) if m not in allowed] == []


LOGGING_CHILD = """
    import base64, io, json, sys
    from pathlib import Path

    from eqliscsi.opennebula import runner
    from eqliscsi.opennebula.output import SizeResult

    before = "logging" in sys.modules
    hooks = len(sys.meta_path)

    def lazy(ctx):
        from eqliscsi.san._lazylog import LazyLogger
        LazyLogger("eqliscsi.san.demo").warning("lazy %s", "record")
        return SizeResult(1)

    def eager(ctx):
        # Like eqliscsi.san.session on the direct path: logging imported late, eagerly.
        import logging
        logging.getLogger("eqliscsi.san.demo").warning("eager record")
        return SizeResult(2)

    def nothing(ctx):
        return SizeResult(3)

    mod = type(sys)("startup_actions")
    mod.lazy, mod.eager, mod.nothing = lazy, eager, nothing
    sys.modules["startup_actions"] = mod
    remotes = Path("remotes")
    (remotes / "datastore" / "eqliscsi").mkdir(parents=True)
    (remotes / "VERSION").write_text("7.0.0")
    doc = b"<DS_DRIVER_ACTION_DATA><IMAGE><PATH>/x</PATH></IMAGE>" \\
          b"<DATASTORE><ID>1</ID></DATASTORE></DS_DRIVER_ACTION_DATA>"
    results = {"logging_at_start": before}
    for name in sys.argv[1:]:
        runner.ACTIONS["ds." + name] = ("startup_actions", name)
        out, err = io.StringIO(), io.StringIO()
        rc = runner.run_action(
            "ds." + name, ["0"], argv0=str(remotes / "datastore" / "eqliscsi" / name),
            stdin=io.BytesIO(base64.b64encode(doc)), stdout=out, stderr=err,
            environ={"EQLISCSI_LOG_FILE": "eqliscsi.log"},
        )
        results[name] = [rc, out.getvalue(), err.getvalue(), "logging" in sys.modules]
    results["hooks_left"] = len(sys.meta_path) - hooks
    print(json.dumps(results))
"""


@pytest.mark.parametrize(
    ("action", "line"),
    [
        pytest.param("lazy", "INFO: ds.lazy: eqliscsi.san.demo: lazy record\n", id="lazy"),
        pytest.param("eager", "INFO: ds.eager: eqliscsi.san.demo: eager record\n", id="eager"),
    ],
)
def test_records_reach_the_action_log_without_eager_logging(
    action: str, line: str, tmp_path: Path
) -> None:
    done = run_child(LOGGING_CHILD, tmp_path, action)
    assert done.returncode == 0, done.stderr
    # Python's last-resort handler would have written the bare message to stderr.
    assert done.stderr == ""
    res = json.loads(done.stdout)
    assert res["logging_at_start"] is False
    rc, out, err, logging_loaded = res[action]
    assert (rc, out, logging_loaded) == (0, "1\n" if action == "lazy" else "2\n", True)
    assert err == line
    assert res["hooks_left"] == 0
    assert line.split(": ", 2)[2] in (tmp_path / "eqliscsi.log").read_text()


def test_an_action_that_logs_nothing_never_imports_logging(tmp_path: Path) -> None:
    done = run_child(LOGGING_CHILD, tmp_path, "nothing", "lazy")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["nothing"] == [0, "3\n", "", False]
    # The hook of the first action is gone; the second one routes its own record.
    assert res["lazy"][2] == "INFO: ds.lazy: eqliscsi.san.demo: lazy record\n"
    assert res["hooks_left"] == 0


def test_monitor_path_creates_only_its_own_command_classes(tmp_path: Path) -> None:
    code = """
        import dataclasses, json, sys
        import eqliscsi.opennebula.runner, eqliscsi.opennebula.actions.ds_volumes
        import eqliscsi.san.broker_sync
        from eqliscsi.san import commands
        commands.PoolShow  # what monitor sends
        loaded = sorted(m for m in sys.modules if m.startswith("eqliscsi.san.commands."))
        classes = sorted(
            f"{name}.{attr}"
            for name, mod in list(sys.modules.items()) if name.startswith("eqliscsi")
            for attr, value in vars(mod).items()
            if isinstance(value, type) and dataclasses.is_dataclass(value)
            and value.__module__ == name
        )
        print(json.dumps([loaded, classes]))
    """
    done = run_child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    loaded, classes = json.loads(done.stdout)
    assert loaded == ["eqliscsi.san.commands._pool"]
    # Each frozen dataclass costs ~0.3-0.7 ms to create; the whole path had 62 of them,
    # then 28; the other actions' results, the image, volume and CLI-machine classes are
    # now created on first use.
    assert len(classes) <= 17, classes
    # TM-only call and document classes stay out of a datastore remote.
    assert not [c for c in classes if c.rsplit(".", 1)[1] in {"TmCall", "MigrateCall", "Vm"}]
    # Nor the classes monitor never makes.
    deferred = {"Image", "VolumeSpec", "VolumeRef", "SourceResult", "NoOutput", "Ready"}
    assert not [c for c in classes if c.rsplit(".", 1)[1] in deferred]


def test_lazy_command_names_resolve_and_stay_one_class() -> None:
    from eqliscsi.san import commands  # noqa: PLC0415

    names = [n for n in commands.__all__ if n[0].isupper() or n == "session_setup"]
    for name in names:
        value = getattr(commands, name)
        assert getattr(commands, name) is value
        if isinstance(value, type) and name not in {"ApplyTo", "AuthMethod", "AccessRule"}:
            assert issubclass(value, commands.Command), name
    assert set(names) <= set(dir(commands))
    with pytest.raises(AttributeError):
        commands.NoSuchCommand  # noqa: B018


@pytest.mark.parametrize(
    ("module", "names"),
    [
        pytest.param(
            "eqliscsi.opennebula.args",
            ("HostPath", "MigrateCall", "TmCall", "parse_tm_call"),
            id="args",
        ),
        pytest.param("eqliscsi.opennebula.driver_action", ("Vm", "VmDisk", "parse_vm"), id="vm"),
        pytest.param(
            "eqliscsi.opennebula.driver_action",
            ("Image", "ImageSnapshot", "ImageType"),
            id="image",
        ),
        pytest.param(
            "eqliscsi.opennebula.output", ("NoOutput", "SizeResult", "SourceResult"), id="output"
        ),
        pytest.param("eqliscsi.san.ops", ("VolumeRef", "VolumeSpec"), id="ops"),
        pytest.param(
            "eqliscsi.san.conversation",
            ("MAX_OUTPUT", "CliConversation", "Closed", "ConvState", "Event", "Ready"),
            id="conversation",
        ),
        pytest.param(
            "eqliscsi.san.parsers",
            ("AccessRecord", "Table", "VolumeInfo", "parse_tables", "parse_volume_info"),
            id="parsers",
        ),
    ],
)
def test_names_moved_to_lazy_submodules_are_still_there(
    module: str, names: tuple[str, ...]
) -> None:
    import importlib  # noqa: PLC0415

    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(mod, name)
        assert name in dir(mod) and name in mod.__all__
    with pytest.raises(AttributeError):
        mod.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    ("pattern", "flags", "method", "text"),
    [
        pytest.param(r"^(\d+)\.(\d+)$", 0, "match", "6.10", id="match"),
        pytest.param(r"^(\d+)\.(\d+)$", 0, "match", "6.10x", id="match-miss"),
        pytest.param(r"[a-z]{1,3}", re.ASCII, "fullmatch", "abc", id="fullmatch"),
        pytest.param(r"[a-z]{1,3}", re.ASCII, "fullmatch", "abcd", id="fullmatch-miss"),
        pytest.param(r"\(y/n\) \[[a-z]+\]\s*\Z", 0, "search", "Sure? (y/n) [n] ", id="search"),
        pytest.param(r"\x1b\[[0-9;?]*[A-Za-z]", 0, "sub", "a\x1b[2Kb\x1b[0mc", id="sub"),
        pytest.param(r"(\w+):(?= |$)", 0, "finditer", "Name: x  Size: 10GB", id="finditer"),
    ],
)
def test_lazy_pattern_answers_like_re(pattern: str, flags: int, method: str, text: str) -> None:
    lazy = LazyPattern(pattern, flags)
    eager = re.compile(pattern, flags)
    if method == "sub":
        assert lazy.sub("", text) == eager.sub("", text)
    elif method == "finditer":
        assert [m.groups() for m in lazy.finditer(text)] == [
            m.groups() for m in eager.finditer(text)
        ]
    else:
        got, want = getattr(lazy, method)(text), getattr(eager, method)(text)
        assert (got and got.group(0), got and got.groups()) == (
            want and want.group(0),
            want and want.groups(),
        )


def test_importing_the_remote_path_compiles_no_pattern(tmp_path: Path) -> None:
    code = """
        import json, sys
        import eqliscsi.opennebula.runner, eqliscsi.opennebula.actions.ds_volumes
        import eqliscsi.san.broker_sync
        from eqliscsi._lazyre import LazyPattern
        lazy = [
            (name, attr, value._compiled is not None)
            for name, mod in list(sys.modules.items()) if name.startswith("eqliscsi")
            for attr, value in vars(mod).items() if isinstance(value, LazyPattern)
        ]
        print(json.dumps(lazy))
    """
    done = run_child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    lazy = json.loads(done.stdout)
    assert len(lazy) >= 20  # parsers, conversation, config, args, ...
    assert [(name, attr) for name, attr, compiled in lazy if compiled] == []


DEFERRED_CHILD = """
    import json, sys
    import eqliscsi  # defers inspect
    stand_in = type(sys.modules["inspect"]).__name__
    from dataclasses import dataclass, fields

    @dataclass(frozen=True)
    class Undocumented:
        a: int

    doc = Undocumented.__doc__  # dataclasses called inspect.signature for it
    import inspect
    real = type(sys.modules["inspect"]) is type(sys)
    sig = str(inspect.signature(lambda x, y=2: None))
    print(json.dumps([stand_in, doc, real, sig, inspect.isfunction(print)]))
"""


def test_a_deferred_module_loads_on_first_use(tmp_path: Path) -> None:
    done = run_child(DEFERRED_CHILD, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "_Deferred",
        "Undocumented(a: int)",
        True,
        "(x, y=2)",
        False,
    ]


def test_defer_import_leaves_an_imported_module_alone() -> None:
    import inspect  # noqa: PLC0415 - pytest imported it long ago

    from eqliscsi import _lazy  # noqa: PLC0415

    _lazy.defer_import("inspect")
    assert sys.modules["inspect"] is inspect


def test_every_dataclass_has_a_docstring() -> None:
    # dataclasses makes a __doc__ for a class without one with inspect.signature, which
    # would import inspect (deferred by eqliscsi/__init__.py) into whichever remote
    # creates that class.
    missing = []
    for path in sorted((ROOT / "eqliscsi").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ClassDef)
                and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
                and not ast.get_docstring(node)
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert missing == []


def test_no_classvar_becomes_a_field_without_typing(tmp_path: Path) -> None:
    # With typing not imported, dataclasses cannot tell a string "ClassVar[...]"
    # annotation from a field type; the broker path must not import typing, so no
    # dataclass it creates may rely on one.
    code = """
        import dataclasses, json, sys
        import eqliscsi.opennebula.runner, eqliscsi.opennebula.actions.ds_volumes
        import eqliscsi.opennebula.actions.tm, eqliscsi.san.broker_sync
        from eqliscsi.san import commands
        commands.PoolShow, commands.VolumeCreate, commands.SnapshotCreateNow
        assert "typing" not in sys.modules
        bad = sorted(
            f"{value.__module__}.{value.__name__}.{f.name}"
            for name, mod in list(sys.modules.items()) if name.startswith("eqliscsi")
            for value in vars(mod).values()
            if isinstance(value, type) and dataclasses.is_dataclass(value)
            for f in dataclasses.fields(value) if "ClassVar" in str(f.type)
        )
        print(json.dumps([bad, commands.VolumeCreate.mutating, commands.PoolShow.mutating]))
    """
    done = run_child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], True, False]
