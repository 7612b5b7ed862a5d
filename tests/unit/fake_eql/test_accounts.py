"""Administration accounts and target authentication (mutual CHAP) in the fake shell.

Account types and what each may do follow the Administrator's Guide ("Account
Permissions"); the grammar and the error wordings are the rig's own (docs/fake-eql.md).
"""

from __future__ import annotations

import re

import pytest

from rig.fake_eql.model import AccountType, AuthMethod, Pool, San, desired_targets
from rig.fake_eql.store import dumps, loads
from tests.unit.fake_eql.conftest import Term

# (setup as grpadmin, command, expected lines: str exact or compiled pattern)
ACCOUNT_COMMANDS = [
    pytest.param(
        [], "account create ro password ro-pass type read-only", ["Account creation succeeded."],
        id="create-read-only",
    ),
    pytest.param(
        [], "account create pa password pa-pass type pool-admin pools default",
        ["Account creation succeeded."], id="create-pool-admin",
    ),
    pytest.param(
        [], "account create pa password pa-pass type pool-admin",
        ["% Error - A pool-admin account needs at least one pool."], id="pool-admin-no-pools",
    ),
    pytest.param(
        [], "account create ro password ro-pass type read-only pools default",
        ["% Error - A read-only account has no pools; omit them."], id="read-only-with-pools",
    ),
    pytest.param(
        [], "account create pa password pa-pass type pool-admin pools nosuch",
        ["% Error - Pool nosuch does not exist."], id="pool-missing",
    ),
    pytest.param(
        [], "account create ro type read-only",
        ["% Error - Incomplete command; a parameter is missing."], id="no-password",
    ),
    pytest.param(
        [], "account create ro password ro-pass type superuser",
        ['% Error - Invalid command or parameter "superuser".'], id="bad-type",
    ),
    pytest.param(
        ["account create ro password ro-pass type read-only"],
        "account create ro password ro-pass type read-only",
        ["% Error - Account ro already exists."], id="exists",
    ),
    pytest.param(
        [], "account select grpadmin show",
        ["_" * 29 + " Account Information " + "_" * 29, "Name: grpadmin", "Type: group-admin",
         "Pools:", "Status: enable", "Description:"],
        id="show-self-builtin",
    ),
    pytest.param(
        ["account create va password va-pass type volume-admin pools default"],
        "account select va show",
        ["_" * 29 + " Account Information " + "_" * 29, "Name: va", "Type: volume-admin",
         "Pools: default", "Status: enable", "Description:"],
        id="show-volume-admin",
    ),
    pytest.param(
        [], "account select nobody show", ["% Error - Account nobody does not exist."],
        id="show-missing",
    ),
    pytest.param(
        ["account create ro password ro-pass type read-only"],
        "account delete ro", ["Account deletion succeeded."], id="delete",
    ),
    pytest.param(
        [], "grpparams target-auth-username eqltarget", [], id="target-auth-username",
    ),
    pytest.param(
        [], "grpparams target-auth-password short",
        [re.compile(r"^% Error - The CHAP password must be 12")], id="target-auth-short",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "command", "expected"), ACCOUNT_COMMANDS)
def test_account_commands(
    qterm: Term, setup: list[str], command: str, expected: list[object]
) -> None:
    for line in setup:
        assert not any(x.startswith("% Error") for x in qterm.cmd(line)), line
    before = qterm.shell.san.generation
    lines = qterm.cmd(command)
    assert len(lines) == len(expected), lines
    for got, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.match(got), (got, want.pattern)
        else:
            assert got == want
    if lines and lines[0].startswith("% Error"):
        assert qterm.shell.san.generation == before  # an error changes nothing


SEED = [
    "account create ro password ro-pass type read-only",
    "account create pa password pa-pass type pool-admin pools default",
    "account create pb password pb-pass type pool-admin pools gold",
    "account create va password va-pass type volume-admin pools default",
]

# What each kind of account may do (account, command, expected first line or None for
# no output).
PERMISSIONS = [
    pytest.param("ro", "volume create v1 1G",
                 "% Error - Account ro is read-only; it cannot change the group.",
                 id="read-only-create"),
    pytest.param("pa", "volume create v1 1G", "Volume creation succeeded.",
                 id="pool-admin-own-pool"),
    pytest.param("pb", "volume create v1 1G",
                 "% Error - Account pb has no permission to manage pool default.",
                 id="pool-admin-other-pool"),
    pytest.param("pb", "volume create v1 1G pool gold", "Volume creation succeeded.",
                 id="pool-admin-named-pool"),
    pytest.param("va", "volume create v1 1G", "Volume creation succeeded.",
                 id="volume-admin-own-pool"),
    pytest.param("ro", "account select ro show",
                 "_" * 29 + " Account Information " + "_" * 29, id="read-only-sees-self"),
    pytest.param("ro", "account select pa show",
                 "_" * 29 + " Account Information " + "_" * 29, id="read-only-sees-others"),
    pytest.param("pa", "account select ro show",
                 "% Error - Account pa has no permission to view account ro.",
                 id="pool-admin-sees-only-self"),
    pytest.param("ro", "account create x password x-pass",
                 "% Error - Account ro is a read-only account; log in as a group administrator.",
                 id="read-only-cannot-create-accounts"),
    pytest.param("pa", "grpparams target-auth-username t",
                 "% Error - Account pa is a pool-admin account; log in as a group administrator.",
                 id="pool-admin-cannot-set-target-auth"),
]  # fmt: skip


@pytest.mark.parametrize(("account", "command", "first"), PERMISSIONS)
def test_permissions(san: San, account: str, command: str, first: str | None) -> None:
    san.pools["gold"] = Pool("gold", 1024 * 1024)
    admin = Term(san)
    admin.quiet()
    for line in SEED:
        assert admin.cmd(line) == ["Account creation succeeded."], line
    term = Term(san, account)
    term.quiet()
    before = san.generation
    lines = term.cmd(command)
    assert (lines[0] if lines else None) == first, lines
    if first is not None and first.startswith("% Error"):
        assert san.generation == before


def test_accounts_and_target_auth_persist() -> None:
    san = San(group_name="grp0")
    san.create_account("pa", "pa-pass", type=AccountType.POOL_ADMIN, pools=("default",))
    san.set_target_auth(user="eqltarget", password="target-secret-1")
    back = loads(dumps(san))
    assert back.accounts == san.accounts
    assert back.account("pa").type is AccountType.POOL_ADMIN
    assert (back.target_auth_user, back.target_auth_password) == ("eqltarget", "target-secret-1")
    # the account that is not stored is the built-in group administrator
    assert back.account("grpadmin").type is AccountType.GROUP_ADMIN


def test_state_without_accounts_still_loads() -> None:
    text = dumps(San(group_name="grp0")).replace('"accounts"', '"x-accounts"')
    assert loads(text).accounts == {}


def test_target_auth_reaches_chap_targets_only() -> None:
    san = San(group_name="grp0")
    san.create_chap_user("bob", "bob-secret-0001")
    chap_vol, _ = san.create_volume("v1", 100)
    san.add_access("v1", username="bob", authmethod=AuthMethod.CHAP)
    open_vol, _ = san.create_volume("v2", 100)
    san.add_access("v2", ipaddress="*.*.*.*")
    assert desired_targets(san)[chap_vol.iqn].target_user == ""  # nothing set yet
    san.set_target_auth(user="eqltarget")
    assert desired_targets(san)[chap_vol.iqn].target_user == ""  # a user without password
    san.set_target_auth(password="target-secret-1")
    spec = desired_targets(san)[chap_vol.iqn]
    assert (spec.target_user, spec.target_password) == ("eqltarget", "target-secret-1")
    assert desired_targets(san)[open_vol.iqn].target_user == ""  # no CHAP, no mutual
