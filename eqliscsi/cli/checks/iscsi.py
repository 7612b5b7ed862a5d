"""iSCSI checks from the front-end, with the native client (``eqliscsi.iscsi_discovery``).

* Discovery: a SendTargets at the group portal with the configured CHAP account.  A
  target that does not use CHAP for discovery answers ``AuthMethod=None`` to an offer
  of ``CHAP`` only (iscsi-protocol.md §7, "AuthMethod selection"); that is reported as
  "discovery is open", and the SendTargets is repeated without CHAP.
* Probe: a Normal login to one online volume this datastore owns, READ CAPACITY and
  INQUIRY.  An EqualLogic group answers the login at the group IP with a redirect
  (status 0x0101, RFC 7143 §11.13.5) to the member that holds the volume; the client
  follows it, and the check reports where it ended up.
"""

from __future__ import annotations

from eqliscsi.cli.checks.base import (
    Check,
    Context,
    Finding,
    Section,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from eqliscsi.cli.checks.inputs import Options
from eqliscsi.cli.checks.san import config_of, owned_volumes, san_volumes
from eqliscsi.errors import EqliscsiError, IscsiError
from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    AuthMethodRejected,
    AuthorizationFailed,
    ChapCredentials,
    IscsiConnectionError,
    IscsiTimeout,
    MutualAuthFailed,
    ProbeResult,
    discover,
    probe,
)
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.san.parsers import VolumeInfo

__all__ = ["CHECKS", "MAX_EQL_CHAP_SECRET", "MIN_CHAP_SECRET"]

# RFC 7143 §12.1.3 wants at least 96 random bits without IPsec; EqualLogic recommends
# 12 characters or more and accepts up to 255 (iscsi-protocol.md §7, "Secrets").
MIN_CHAP_SECRET = 12
MAX_EQL_CHAP_SECRET = 255
ISCSI_TIMEOUT = 15.0


def _auth(cfg: EqlConfig) -> Auth:
    if cfg.chap_user and cfg.chap_secret is not None:
        return Auth(chap=ChapCredentials(cfg.chap_user, cfg.chap_secret))
    return Auth()


def _mutual_auth(cfg: EqlConfig) -> Auth:
    assert cfg.chap_user and cfg.chap_secret is not None
    assert cfg.chap_target_user and cfg.chap_target_secret is not None
    return Auth(
        chap=ChapCredentials(cfg.chap_user, cfg.chap_secret),
        mutual=ChapCredentials(cfg.chap_target_user, cfg.chap_target_secret),
    )


def _fix_for(exc: EqliscsiError, cfg: EqlConfig) -> str:
    if isinstance(exc, AuthenticationFailed):
        return (
            f"Check EQL_CHAP_USER ({cfg.chap_user}) and the secret in EQL_CHAP_SECRET_FILE "
            "against the group's CHAP account."
        )
    if isinstance(exc, AuthorizationFailed):
        return "Add an access record for the front-end's initiator or address to the volume."
    if isinstance(exc, IscsiTimeout | IscsiConnectionError):
        return "Check EQL_PORTAL and that the front-end reaches the group's iSCSI port 3260."
    return exc.hint or "Correct the cause named and run preflight again."


async def check_discovery(ctx: Context, _: str) -> Finding:
    cfg = config_of(ctx)
    if cfg is None or not (cfg.portal or cfg.host):
        return skipped("the configuration is unusable (see fe.conf)")
    portal = cfg.discovery_portal
    auth = _auth(cfg)
    note = ""
    try:
        try:
            targets = await discover(portal, auth=auth, timeout=ISCSI_TIMEOUT)
        except AuthMethodRejected:
            if auth.chap is None:
                raise
            note = "; the portal does not ask for CHAP at discovery"
            targets = await discover(portal, timeout=ISCSI_TIMEOUT)
    except IscsiError as exc:
        return failed(f"SendTargets at {portal} failed: {exc.message}", _fix_for(exc, cfg))
    with_chap = " with CHAP" if auth.chap is not None and not note else ""
    return passed(f"SendTargets at {portal}{with_chap} listed {len(targets)} target(s){note}")


async def _volume_to_probe(ctx: Context, cfg: EqlConfig) -> VolumeInfo | Finding:
    try:
        facts = await san_volumes(ctx)
    except EqliscsiError:
        return skipped("no SAN session, so no volume to probe (see san.login)")
    opts: Options = ctx.options
    online = [v for v in owned_volumes(facts, opts.datastore_id) if v.status == "online"]
    if not online:
        return skipped("no online eqliscsi volume to probe yet")
    return online[0]


async def _probe(ctx: Context) -> ProbeResult | Finding:
    cfg = config_of(ctx)
    if cfg is None:
        return skipped("the configuration is unusable (see fe.conf)")
    volume = await _volume_to_probe(ctx, cfg)
    if isinstance(volume, Finding):
        return volume

    async def run() -> ProbeResult:
        return await probe(cfg.discovery_portal, volume.iqn, auth=_auth(cfg), timeout=ISCSI_TIMEOUT)

    try:
        result: ProbeResult = await ctx.shared("iscsi-probe", run)
    except IscsiError as exc:
        return failed(f"login to {volume.name} failed: {exc.message}", _fix_for(exc, cfg))
    return result


async def check_probe(ctx: Context, _: str) -> Finding:
    result = await _probe(ctx)
    if isinstance(result, Finding):
        return result
    if not result.luns:
        return failed(
            f"{result.target} answered the login but shows no disk LUN",
            "Check the volume's status on the group (online, not a snapshot in use).",
        )
    lun = result.luns[0]
    name = result.target.rsplit(":", 1)[-1]
    return passed(
        f"{name}: LUN {lun.lun}, {lun.size_bytes // (1024 * 1024)} MiB, {lun.vendor} {lun.product}"
    )


async def check_redirect(ctx: Context, _: str) -> Finding:
    result = await _probe(ctx)
    if isinstance(result, Finding):
        return result
    if result.redirected_to is None:
        return passed(f"the group portal {result.portal} served the login itself")
    return passed(f"login redirected from {result.portal} to member portal {result.redirected_to}")


async def check_mutual_chap(ctx: Context, _: str) -> Finding:
    """A login to the probed volume that also makes the target prove itself.

    EqualLogic answers mutual CHAP with the group's one target-authentication account
    (Administrator's Guide, "Configure Target Authentication"); the hosts check the
    same user and secret (``node.session.auth.username_in``/``password_in``).  The
    client fails the login when the target's CHAP_N or CHAP_R is wrong or missing
    (iscsi-protocol.md, "Mutual CHAP"), so a pass means the target knows the secret.
    """
    cfg = config_of(ctx)
    if cfg is None:
        return skipped("the configuration is unusable (see fe.conf)")
    if not cfg.mutual_chap:
        return skipped("mutual CHAP is not configured (no EQL_CHAP_TARGET_USER)")
    volume = await _volume_to_probe(ctx, cfg)
    if isinstance(volume, Finding):
        return volume
    user = cfg.chap_target_user
    fix = (
        f"Set the group's target authentication (Group Configuration, iSCSI) to user {user} "
        "and the secret in EQL_CHAP_TARGET_SECRET_FILE, or correct those two settings here."
    )
    try:
        await probe(cfg.discovery_portal, volume.iqn, auth=_mutual_auth(cfg), timeout=ISCSI_TIMEOUT)
    except MutualAuthFailed as exc:
        return failed(f"login to {volume.name}: {exc.message}", fix)
    except AuthenticationFailed as exc:
        # tgt refuses a mutual login outright (0x0201) when it has no target account,
        # where LIO would fall back to one-way (iscsi-protocol.md, "Mutual CHAP").
        return failed(
            f"login to {volume.name} with mutual CHAP was refused: {exc.message}",
            f"Check iscsi.probe (one-way CHAP) first, then that the group's target "
            f"authentication user is {user}.",
        )
    except IscsiError as exc:
        return failed(f"login to {volume.name} failed: {exc.message}", _fix_for(exc, cfg))
    return passed(f"{volume.name}: the target proved itself as {user} (mutual CHAP)")


async def check_chap_secret(ctx: Context, _: str) -> Finding:
    cfg = config_of(ctx)
    if cfg is None:
        return skipped("the configuration is unusable (see fe.conf)")
    if cfg.chap_secret is None:
        if cfg.chap_user:
            return failed(
                "EQL_CHAP_USER is set but EQL_CHAP_SECRET_FILE is not",
                "Set EQL_CHAP_SECRET_FILE to a 0600 file holding the CHAP secret.",
            )
        return skipped("no front-end CHAP account is configured")
    named = [("CHAP secret", "EQL_CHAP_SECRET_FILE", len(cfg.chap_secret))]
    if cfg.chap_target_secret is not None:
        # The group's target secret obeys the same rules (it is a CHAP secret too).
        named.append(
            ("target CHAP secret", "EQL_CHAP_TARGET_SECRET_FILE", len(cfg.chap_target_secret))
        )
    for what, key, n in named:
        if n > MAX_EQL_CHAP_SECRET:
            return failed(
                f"the {what} is {n} bytes; EqualLogic accepts at most {MAX_EQL_CHAP_SECRET}",
                f"Choose a secret of 12 to 16 characters, set it on the group and in {key}.",
            )
    for what, key, n in named:
        if n < MIN_CHAP_SECRET:
            return warned(
                f"the {what} is {n} bytes, under the {MIN_CHAP_SECRET} RFC 7143 asks for",
                f"Choose a secret of 12 to 16 characters, set it on the group and in {key}.",
            )
    sizes = " and ".join(f"the {what} is {n} bytes" for what, _, n in named)
    return passed(f"{sizes}, within {MIN_CHAP_SECRET}-{MAX_EQL_CHAP_SECRET}")


def _check(cid: str, title: str, fn: object, sev: Severity = Severity.ERROR) -> Check:
    return Check(cid, Section.ISCSI, sev, 60.0, title, fn)  # type: ignore[arg-type]


CHECKS = (
    _check("iscsi.discovery", "SendTargets at the group portal", check_discovery),
    _check("iscsi.redirect", "redirect to a member portal", check_redirect),
    _check("iscsi.mutual-chap", "mutual CHAP", check_mutual_chap),
    _check("iscsi.chap-secret", "CHAP secret length", check_chap_secret),
    _check("iscsi.probe", "probe one eqliscsi volume", check_probe),
)
