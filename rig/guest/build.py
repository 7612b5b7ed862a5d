"""Build the kernel-guest tier's boot artefacts from Debian packages, cached by content.

The guest is a QEMU TCG machine running Debian's own 6.1 kernel, because this host's
kernel has no LIO and no iSCSI initiator.  Three artefacts come out of a build:

- ``vmlinuz``: the kernel, unpacked from the ``linux-image`` package with
  ``dpkg-deb -x`` into the cache (nothing is installed to ``/boot``);
- ``initrd.cpio.gz``: a busybox-static initramfs whose only job is to ``insmod``
  virtio and ext4 (Debian builds them as modules) and ``switch_root``;
- ``rootfs.ext4``: a debootstrap ``minbase`` tree with python3, open-iscsi, udev,
  openssh-server and python3-rtslib-fb, plus the kernel modules the tier uses,
  made with ``mkfs.ext4 -d`` and booted with ``snapshot=on`` so it is never written.

Why ext4 and not one big initramfs: the rootfs is ~250 MB, and unpacking that
under TCG on every boot costs more time and guest memory than a virtio disk read
lazily (environment.md measured 6-12 s for a busybox-only guest, ~30 s for a
full rootfs).

The project's own code is *not* baked in: the VM shares the source tree read-only
over virtio-9p (see ``vm.py``), so editing the agent or the library does not force
a rebuild.  The cache key hashes what does: the resolved kernel package and
version, the package list, the module list, and the guest files in this directory.

Cache: ``$EQLISCSI_CACHE/guest/<key>`` (default ``/var/cache/eqliscsi``).  A build
runs under an exclusive ``flock`` and is published by renaming a finished
directory, so concurrent test sessions never see a half-built guest.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eqliscsi.errors import RigError

__all__ = [
    "GUEST_MODULES",
    "GuestBuildError",
    "GuestImage",
    "build",
    "cache_root",
]

_HERE = Path(__file__).resolve().parent
_FILES = _HERE / "files"

DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The meta-package follows security updates; its resolved dependency (name and
# version) goes into the cache key, so a new kernel is a new guest.
KERNEL_META = "linux-image-amd64"

ROOTFS_PACKAGES = (
    "python3",
    "python3-rtslib-fb",  # LIO through configfs, used by the in-guest agent
    "open-iscsi",  # the real iscsiadm/iscsid the TM driver runs on hosts
    "udev",  # /dev/disk/by-path links and the shipped udev rule
    "openssh-server",  # the TM driver's steps arrive over SSH
    "iproute2",
    "kmod",  # the kernel calls /sbin/modprobe; rtslib loads modules too
    "procps",
    "e2fsprogs",
    "util-linux",
    "sudo",  # the TM driver reaches hosts as oneadmin and runs `sudo -n iscsiadm`
)

# Loaded by the initramfs, in dependency order, before the root disk can be read.
BOOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")

# Loaded by the rootfs init.  crc32c_generic: without it LIO logins fail in
# iscsi_login_setup_crypto (environment.md).  sha3_generic: LIO offers CHAP_A=8
# (SHA3-256) only when the kernel can compute it.
GUEST_MODULES = (
    "configfs",
    "crc32c_generic",
    "sha3_generic",
    "target_core_mod",
    "target_core_file",
    "target_core_iblock",
    "iscsi_target_mod",
    "scsi_transport_iscsi",
    "libiscsi",
    "libiscsi_tcp",
    "iscsi_tcp",
    "sd_mod",
    "virtio_net",
    "9pnet_virtio",
    "9p",
    "loop",
)

# Bump when a build step below changes what ends up in the artefacts (the step code
# is not hashed, so that editing comments or logging does not cost a rebuild).
_FORMAT = 2

# Size of the free space left in rootfs.ext4 (writes go to QEMU's snapshot overlay,
# but the guest still needs room in /var, /tmp and /root).
_ROOTFS_SLACK_MB = 256

# Hard limits so a dead mirror fails the build instead of hanging CI.
_DEBOOTSTRAP_TIMEOUT_S = 900
_STEP_TIMEOUT_S = 300


class GuestBuildError(RigError):
    reference = "guest-build-failed"


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A finished, cached guest."""

    directory: Path
    kernel_version: str
    vmlinuz: Path
    vmlinux: Path  # the same kernel uncompressed: QEMU boots it via PVH, ~3 s sooner
    initrd: Path
    rootfs: Path
    ssh_key: Path  # private key whose public half is root's authorized key
    ssh_host_key_pub: Path

    @classmethod
    def load(cls, directory: Path) -> GuestImage:
        meta = json.loads((directory / "meta.json").read_text())
        return cls(
            directory=directory,
            kernel_version=str(meta["kernel_version"]),
            vmlinuz=directory / "vmlinuz",
            vmlinux=directory / "vmlinux",
            initrd=directory / "initrd.cpio.gz",
            rootfs=directory / "rootfs.ext4",
            ssh_key=directory / "id_ed25519",
            ssh_host_key_pub=directory / "ssh_host_ed25519_key.pub",
        )


def project_dependencies() -> list[str]:
    """The package's runtime requirements (pyproject), installed into the guest so
    that the project tree shared over 9p imports there (asyncssh, construct, ...)."""
    data = tomllib.loads((_HERE.parents[1] / "pyproject.toml").read_text())
    return sorted(str(d) for d in data["project"]["dependencies"])


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage compressed with xz (Debian: CONFIG_KERNEL_XZ).

    QEMU boots an ELF kernel with a PVH note (CONFIG_PVH) directly, skipping the
    real-mode setup and the in-guest decompression, which TCG emulates slowly.
    """
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise GuestBuildError("The kernel image is not xz-compressed; boot vmlinuz instead.")
    # The payload is followed by other data; the decompressor stops at stream end.
    elf = lzma.LZMADecompressor().decompress(bzimage[start:])
    if not elf.startswith(b"\x7fELF"):
        raise GuestBuildError("The kernel image holds no ELF kernel; boot vmlinuz instead.")
    return elf


def cache_root() -> Path:
    return Path(os.environ.get("EQLISCSI_CACHE", "/var/cache/eqliscsi")) / "guest"


def _run(argv: Sequence[str | Path], *, timeout: float = _STEP_TIMEOUT_S, **kw: object) -> str:
    try:
        proc = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,  # type: ignore[call-overload]
        )
    except subprocess.TimeoutExpired:
        raise GuestBuildError(
            f"Guest build step {Path(str(argv[0])).name} took more than {timeout:.0f} s; "
            "check the Debian mirror and the machine's load, then rebuild."
        ) from None
    except FileNotFoundError:
        raise GuestBuildError(
            f"Guest build needs {argv[0]}; run scripts/bootstrap.sh to install it."
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise GuestBuildError(
            f"Guest build step {Path(str(argv[0])).name} failed with status "
            f"{proc.returncode} ({' / '.join(tail)}); fix the cause and rebuild."
        )
    return str(proc.stdout)


def resolve_kernel_package() -> tuple[str, str]:
    """The concrete ``linux-image-*`` package and version the meta-package points to."""
    out = _run(["apt-cache", "depends", KERNEL_META])
    m = re.search(r"Depends: (linux-image-[0-9][\w.+-]*-amd64)", out)
    if not m:
        raise GuestBuildError(
            f"apt-cache does not know {KERNEL_META}; run apt-get update and rebuild."
        )
    pkg = m.group(1)
    policy = _run(["apt-cache", "policy", pkg])
    v = re.search(r"Candidate: (\S+)", policy)
    if not v or v.group(1) == "(none)":
        raise GuestBuildError(f"No candidate version of {pkg}; run apt-get update and rebuild.")
    return pkg, v.group(1)


def cache_key(kernel_pkg: str, kernel_ver: str) -> str:
    h = hashlib.sha256()
    recipe = {
        "suite": DEBIAN_SUITE,
        "kernel": [kernel_pkg, kernel_ver],
        "packages": ROOTFS_PACKAGES,
        "boot_modules": BOOT_MODULES,
        "guest_modules": GUEST_MODULES,
        "slack": _ROOTFS_SLACK_MB,
        "python_deps": project_dependencies(),
        "format": _FORMAT,
    }
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for f in sorted(_FILES.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(*, mirror: str | None = None, log: bool = False) -> GuestImage:
    """Return the cached guest, building it first when the cache has no such key."""
    pkg, ver = resolve_kernel_package()
    key = cache_key(pkg, ver)
    root = cache_root()
    final = root / key
    with _locked(root / ".lock"):
        if (final / "meta.json").is_file():
            return GuestImage.load(final)
        work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
        try:
            _build_into(work, pkg, ver, mirror or os.environ.get("EQLISCSI_DEBIAN_MIRROR"), log)
            work.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return GuestImage.load(final)


def _say(log: bool, msg: str) -> None:
    if log:
        print(f"guest-build: {msg}", file=sys.stderr, flush=True)


def _build_into(out: Path, pkg: str, ver: str, mirror: str | None, log: bool) -> None:
    t0 = time.monotonic()
    scratch = out / "scratch"
    scratch.mkdir()

    # 1. The kernel package, unpacked.  apt's download sandbox user (_apt) cannot
    # write into our private build directory, so download as the caller.
    _say(log, f"downloading {pkg}={ver}")
    dl = scratch / "deb"
    dl.mkdir()
    _run(["apt-get", "-o", "APT::Sandbox::User=root", "download", f"{pkg}={ver}"], cwd=dl)
    deb = next(dl.glob("*.deb"))
    kroot = scratch / "kernel"
    _run(["dpkg-deb", "-x", deb, kroot])
    versions = [p.name for p in (kroot / "lib/modules").iterdir()]
    if len(versions) != 1:
        raise GuestBuildError(f"{pkg} holds {len(versions)} module trees; expected one.")
    kver = versions[0]
    _run(["depmod", "-b", kroot, kver])
    shutil.copy2(kroot / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
    (out / "vmlinux").write_bytes(extract_vmlinux((out / "vmlinuz").read_bytes()))

    boot_mods = _module_closure(kroot, kver, BOOT_MODULES)
    guest_mods = _module_closure(kroot, kver, GUEST_MODULES + BOOT_MODULES)

    # 2. The root filesystem.
    _say(log, f"debootstrap {DEBIAN_SUITE} (+{len(ROOTFS_PACKAGES)} packages)")
    tree = scratch / "root"
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(ROOTFS_PACKAGES)}",
            DEBIAN_SUITE,
            tree,
            mirror or DEFAULT_MIRROR,
        ],
        timeout=_DEBOOTSTRAP_TIMEOUT_S,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    _say(log, f"debootstrap done after {time.monotonic() - t0:.0f} s")
    # The project's PyPI dependencies, for the guest's python3 (Debian's 3.11, the
    # same as the project's, so the host's pip picks matching wheels).
    if sys.version_info[:2] != (3, 11):
        raise GuestBuildError(
            "The guest build must run under Python 3.11 (the guest's python3); "
            "use the project's .venv."
        )
    _run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", tree / "usr/local/lib/python3.11/dist-packages",
            *project_dependencies(),
        ],
    )  # fmt: skip
    mod_dir = tree / "lib/modules" / kver
    for rel in guest_mods:
        dst = mod_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kroot / "lib/modules" / kver / rel, dst)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        src = kroot / "lib/modules" / kver / meta
        if src.exists():
            shutil.copy2(src, mod_dir / meta)
    _run(["depmod", "-b", tree, kver])
    _configure_rootfs(tree, out)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        p = tree / junk
        if p.is_dir():
            shutil.rmtree(p)
            p.mkdir()
    used_mb = int(_run(["du", "-sm", "--apparent-size", tree]).split()[0])
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "eqlroot",
            "-d",
            tree,
            out / "rootfs.ext4",
            f"{used_mb + _ROOTFS_SLACK_MB}M",
        ]
    )

    # 3. The initramfs: busybox plus the boot modules, in load order.
    _say(log, "initramfs")
    ird = scratch / "initrd"
    (ird / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise GuestBuildError("busybox is missing; install busybox-static and rebuild.")
    shutil.copy2(busybox, ird / "bin/busybox")
    (ird / "mods").mkdir()
    order = []
    for i, rel in enumerate(boot_mods):
        name = f"{i:02d}-{Path(rel).name}"
        shutil.copy2(kroot / "lib/modules" / kver / rel, ird / "mods" / name)
        order.append(name)
    (ird / "mods/order").write_text("\n".join(order) + "\n")
    shutil.copy2(_FILES / "initramfs-init", ird / "init")
    os.chmod(ird / "init", 0o755)  # noqa: S103 - an executable in the guest's image
    names = sorted(str(p.relative_to(ird)) for p in ird.rglob("*"))
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        input="\n".join(names).encode(),
        cwd=ird,
        capture_output=True,
        check=True,
        timeout=_STEP_TIMEOUT_S,
    ).stdout
    (out / "initrd.cpio.gz").write_bytes(gzip.compress(cpio, compresslevel=6))

    (out / "meta.json").write_text(
        json.dumps(
            {
                "kernel_package": pkg,
                "kernel_package_version": ver,
                "kernel_version": kver,
                "packages": ROOTFS_PACKAGES,
                "build_seconds": round(time.monotonic() - t0, 1),
            },
            indent=1,
        )
    )
    shutil.rmtree(scratch)
    _say(log, f"built in {time.monotonic() - t0:.0f} s")


def _module_closure(kroot: Path, kver: str, names: Sequence[str]) -> list[str]:
    """Module paths (relative to the module tree) for ``names`` and their dependencies,
    in an order ``insmod`` accepts."""
    base = kroot / "lib/modules" / kver
    seen: list[str] = []
    for name in names:
        out = _run(["modprobe", "-d", kroot, "-S", kver, "--show-depends", name])
        for line in out.splitlines():
            parts = line.split()
            if not parts or parts[0] != "insmod":
                continue  # "builtin X": nothing to load
            rel = str(Path(parts[1]).relative_to(base))
            if rel not in seen:
                seen.append(rel)
    return seen


def _configure_rootfs(tree: Path, out: Path) -> None:
    # Our own init instead of systemd: it starts exactly what the tier needs and
    # is ready in seconds under TCG, where systemd's unit graph costs tens.
    init = tree / "sbin/eqliscsi-init"
    shutil.copy2(_FILES / "rootfs-init", init)
    os.chmod(init, 0o755)  # noqa: S103 - an executable in the guest's image
    (tree / "etc/hostname").write_text("eqlguest\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost eqlguest\n")
    (tree / "etc/fstab").write_text("")
    # A fixed initiator name the tests can put in ACLs.
    (tree / "etc/iscsi/initiatorname.iscsi").write_text(
        "InitiatorName=iqn.2026-11.test.eqliscsi:guest\n"
    )
    for d in ("srv/share", "opt/eqliscsi", "run/sshd", "root/.ssh"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    # SSH: one host key and one client key per build; the private client key stays
    # in the cache directory (0600), the host key is pinned by the VM's known_hosts.
    for f in (tree / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    hostkey = tree / "etc/ssh/ssh_host_ed25519_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "eqlguest", "-f", hostkey])
    shutil.copy2(hostkey.with_suffix(".pub"), out / "ssh_host_ed25519_key.pub")
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "eqliscsi-rig",
            "-f",
            out / "id_ed25519",
        ]
    )
    os.chmod(out / "id_ed25519", 0o600)
    auth = tree / "root/.ssh/authorized_keys"
    shutil.copy2(out / "id_ed25519.pub", auth)
    os.chmod(tree / "root/.ssh", 0o700)
    os.chmod(auth, 0o600)
    (tree / "etc/ssh/sshd_config.d/eqliscsi.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "UseDNS no\n"
    )


def prune(keep: Path) -> list[Path]:
    """Remove every cached guest but ``keep`` (and unfinished builds); return what went."""
    gone = []
    with _locked(cache_root() / ".lock"):
        for d in cache_root().iterdir():
            if d.is_dir() and d != keep:
                shutil.rmtree(d)
                gone.append(d)
    return gone


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rig.guest.build [--prune]``: build (or find) the guest and print
    where it is; ``--prune`` then deletes older guests from the cache."""
    args = list(sys.argv[1:] if argv is None else argv)
    t0 = time.monotonic()
    image = build(log=True)
    removed = prune(image.directory) if "--prune" in args else []
    report = {
        "directory": str(image.directory),
        "kernel": image.kernel_version,
        "seconds": round(time.monotonic() - t0, 1),
        "pruned": [str(d) for d in removed],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
