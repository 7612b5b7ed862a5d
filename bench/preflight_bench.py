"""Preflight benchmark: one SAN and 20 hosts, wall time against the slowest single check.

Starts, on 127.0.0.1 only:

* a fake EqualLogic group (``python -m rig.fake_eql`` with tgt: CLI on a free port, group
  portal on another), seeded with a CHAP user and one volume of datastore 100;
* one OpenSSH ``sshd`` of its own (generated host key, a throwaway client key), reached
  through 20 ``Host hN`` aliases, so that each "host" is a separate SSH connection and a
  real run of the host script on this machine.

Then runs every SAN, iSCSI and host check once (``eqliscsi.cli.preflight.run_preflight``)
and prints: checks run, wall time, the slowest single check, and the sum of all check
durations (what a one-at-a-time checker would take).  Usage::

    .venv/bin/python bench/preflight_bench.py [--hosts 20] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eqliscsi.cli.checks import ALL_CHECKS, Section  # noqa: E402
from eqliscsi.cli.checks.inputs import Options, load_config, reference_remotes  # noqa: E402
from eqliscsi.cli.preflight import run_preflight  # noqa: E402
from eqliscsi.san.commands import AccessRule  # noqa: E402
from eqliscsi.san.endpoint import SanEndpoint  # noqa: E402
from eqliscsi.san.ops import SanOps, VolumeSpec  # noqa: E402
from eqliscsi.san.session import open_session  # noqa: E402
from eqliscsi.secret import Secret  # noqa: E402
from rig.targets.tgt import free_port  # noqa: E402
from tests.integration.fake_eql.conftest import (  # noqa: E402
    ACCOUNT,
    PASSWORD,
    start_fake,
    stop_fake,
)

CHAP_USER, CHAP_SECRET = "bench", "bench-chap-secret"


def start_sshd(d: Path, port: int) -> subprocess.Popen[bytes]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")],
                   check=True)  # fmt: skip
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")],
                   check=True)  # fmt: skip
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nMaxStartups 100:30:200\n"
        "MaxSessions 100\n"
    )
    # sshd wants /run/sshd (privilege separation); give it one in a private mount
    # namespace instead of creating it on the machine.
    inner = f"mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && exec {sshd} -D -e -f "
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         inner + str(d / "sshd_config")],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:  # bounded: sshd listens within a few hundred ms
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sshd did not start") from None
            time.sleep(0.05)
    pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    return proc


def ssh_config(d: Path, port: int, hosts: int) -> Path:
    lines = []
    for n in range(1, hosts + 1):
        lines += [f"Host h{n}", "  HostName 127.0.0.1", f"  Port {port}",
                  f"  IdentityFile {d / 'client_key'}", "  IdentitiesOnly yes",
                  f"  UserKnownHostsFile {d / 'known_hosts'}", "  StrictHostKeyChecking yes",
                  f"  HostKeyAlias [127.0.0.1]:{port}"]  # fmt: skip
    path = d / "ssh_config"
    path.write_text("\n".join(lines) + "\n")
    return path


async def seed(ep: SanEndpoint) -> None:
    async with open_session(ep) as s:
        ops = SanOps(s, 100)
        await ops.ensure_chap_user(CHAP_USER, Secret(CHAP_SECRET.encode()))
        await ops.create_volume(
            VolumeSpec("one-1", 30, pool="default", access=(AccessRule(username=CHAP_USER),))
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        d = Path(tmp)
        pw = d / "password"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        chap = d / "chap"
        chap.write_text(CHAP_SECRET)
        chap.chmod(0o600)
        portal = f"127.0.0.1:{free_port()}"
        fake = start_fake(d / "state", pw, iscsi_portal=portal)
        sshd_port = free_port()
        sshd = start_sshd(d, sshd_port)
        try:
            (d / "group_kh").write_text(fake.host_key_line)
            ep = SanEndpoint(
                host=fake.host, port=fake.port, username=ACCOUNT,
                password=Secret(PASSWORD.encode()), known_hosts=str(d / "group_kh"),
            )  # fmt: skip
            asyncio.run(seed(ep))
            conf = d / "eqliscsi.conf"
            conf.write_text(
                f"EQL_HOST={fake.host}\nEQL_SSH_PORT={fake.port}\nEQL_USER={ACCOUNT}\n"
                f"EQL_PASS_FILE={pw}\nEQL_PORTAL={portal}\nEQL_CHAP_USER={CHAP_USER}\n"
                f"EQL_CHAP_SECRET_FILE={chap}\nEQL_KNOWN_HOSTS={d / 'group_kh'}\n"
            )
            options = Options(
                conf_path=conf, config=load_config(conf, None), datastore_id=100,
                reference_remotes=reference_remotes(),
                hosts=tuple(f"h{n}" for n in range(1, args.hosts + 1)),
                host_user="", ssh_config=ssh_config(d, sshd_port, args.hosts),
            )  # fmt: skip
            checks = [c for c in ALL_CHECKS if c.section is not Section.FRONTEND]
            # Baseline: the same checks against one host; its slowest check is what a
            # perfectly concurrent run against N hosts could at best take.
            single = asyncio.run(run_preflight(replace(options, hosts=("h1",)), checks))
            base_result = max(single, key=lambda r: r.duration_s)
            base = base_result.duration_s
            runs: list[dict[str, Any]] = []
            for _ in range(args.runs):
                start = time.monotonic()
                results = asyncio.run(run_preflight(options, checks))
                wall = time.monotonic() - start
                slowest = max(results, key=lambda r: r.duration_s)
                runs.append({
                    "checks": len(results),
                    "wall_s": wall,
                    "slowest_check": f"{slowest.id} {slowest.subject}".strip(),
                    "slowest_s": slowest.duration_s,
                    "statuses": {s: sum(r.status.value == s for r in results)
                                 for s in ("pass", "warn", "fail", "skip")},
                })  # fmt: skip
        finally:
            sshd.terminate()
            sshd.wait(timeout=10)
            stop_fake(fake)
    # sshd has reaped its sessions and been reaped itself: the children's CPU now holds
    # every ssh client, sshd session and host script of all runs (and the fake group).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = usage.ru_utime + usage.ru_stime
    me = resource.getrusage(resource.RUSAGE_SELF)
    round_trips = args.runs * args.hosts + 1
    print(f"1 SAN + {args.hosts} hosts, {runs[0]['checks']} checks per run, {args.runs} runs,"
          f" load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"baseline, 1 host: slowest single check {base_result.id} {base:.2f} s")
    print("| run | wall | slowest check | slowest | wall / 1-host slowest | statuses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(runs, 1):
        print(f"| {i} | {r['wall_s']:.2f} s | {r['slowest_check']} | {r['slowest_s']:.2f} s | "
              f"{r['wall_s'] / base:.2f} | {r['statuses']} |")  # fmt: skip
    mine = me.ru_utime + me.ru_stime
    print(f"CPU: child processes {child_cpu:.1f} s (about {child_cpu / round_trips:.2f} s per "
          f"host round trip, fake group included), checker {mine:.1f} s")  # fmt: skip
    med = statistics.median(r["wall_s"] for r in runs)
    print(f"median wall {med:.2f} s = {med / base:.2f} x the 1-host slowest check")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
