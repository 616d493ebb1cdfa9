"""Throwaway signing keys for tests: SSH (always) and GPG (where gpg is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import git


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: Path
    principal: str

    @property
    def allowed_line(self) -> str:
        keytype, blob = self.public.read_text().split()[:2]
        return f'{self.principal} namespaces="git" {keytype} {blob}\n'


def make_ssh_key(folder: Path, name: str, principal: str) -> SshKey:
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(private)],
        check=True,
        capture_output=True,
    )
    return SshKey(private, private.with_suffix(".pub"), principal)


def use_ssh_key(repo: Path, key: SshKey) -> None:
    """Make `repo` sign with `key` (local config, so the test HOME stays untouched)."""
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key.public))


def allow(repo: Path, *keys: SshKey, commit: bool = True, sign_with: SshKey | None = None) -> None:
    """Write the registry's allowed-signers file with `keys` (and commit it)."""
    path = repo / ".modelctl" / "allowed_signers"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(k.allowed_line for k in keys))
    if commit:
        git(repo, "add", str(path))
        args = ["commit", "-q", "-m", "allowed signers"]
        if sign_with is not None:
            args = [
                "-c",
                "gpg.format=ssh",
                "-c",
                f"user.signingkey={sign_with.public}",
                *args,
                "-S",
            ]
        git(repo, *args)


def set_signing(repo: Path, mode: str) -> None:
    """Set `signing:` in modelctl.yaml and commit it."""
    settings = repo / "modelctl.yaml"
    text = settings.read_text()
    for old in ("signing: optional", "signing: required", "signing: off"):
        text = text.replace(old, f"signing: {mode}")
    settings.write_text(text)
    git(repo, "commit", "-qam", f"signing: {mode}")


def have_gpg() -> bool:
    return shutil.which("gpg") is not None


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str


def make_gpg_key(uid: str = "CI Bot <ci-bot@example>") -> GpgKey:
    """A passphrase-less key in a short GNUPGHOME (long socket paths break gpg-agent)."""
    home = Path(tempfile.mkdtemp(prefix="g"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    quiet = ["--batch", "--pinentry-mode", "loopback", "--passphrase"]
    subprocess.run(
        ["gpg", *quiet, "", "--quick-gen-key", uid, "ed25519", "sign", "1d"],
        check=True,
        capture_output=True,
        env=env,
    )
    out = subprocess.run(
        ["gpg", "--list-secret-keys", "--with-colons"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))
    return GpgKey(home, fpr)
