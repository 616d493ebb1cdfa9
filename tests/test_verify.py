"""`modelctl verify` on crafted real repositories.

Every finding here comes from a real git history: lifecycle commits are made with the CLI, keys
are throwaway SSH keys (and GPG keys where gpg is installed), and each attack is built with plain
git (hand-typed trailers, rewritten objects, moved refs, backdated committer dates). Git is never
mocked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, git, make_registry
from signing import (
    GpgKey,
    SshKey,
    allow,
    have_gpg,
    make_gpg_key,
    make_ssh_key,
    set_signing,
    use_ssh_key,
)

ROUTE = "routes/support-bot.yaml"
SIGNERS = ".modelctl/allowed_signers"
GPT5 = ("--model", "support-gpt@2026-05", "--prompt", "support-system@4")
GPT3 = ("--model", "support-gpt@2026-03", "--prompt", "support-system@3")
FALLBACK = ("--fallback", "support-claude@2026-05,support-system@4")


def tag_ref(stage: str, seq: int) -> str:
    return f"refs/tags/modelctl/support-bot/{stage}/{seq}"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example registry minus its hand-written route file: a history verify accepts."""
    return make_registry(tmp_path / "reg", routes=False)


@pytest.fixture
def ci(tmp_path: Path) -> SshKey:
    return make_ssh_key(tmp_path / "keys", "ci", "ci-bot@example")


@pytest.fixture
def mallory(tmp_path: Path) -> SshKey:
    return make_ssh_key(tmp_path / "keys", "mallory", "mallory@example")


def signed_registry(repo: Path, key: SshKey) -> None:
    """`key` is the only allowed signer, signing is required, and the repo signs with `key`."""
    allow(repo, key)
    set_signing(repo, "required")
    use_ssh_key(repo, key)


def trust(repo: Path, *lines: str) -> None:
    """Commit an allowed-signers file made of `lines` (a plain, unsigned commit)."""
    (repo / SIGNERS).write_text("".join(lines))
    git(repo, "commit", "-qam", "allowed signers")


def verify(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = cli("verify", "--json", *args, cwd=repo, env=env)
    assert result.exit_code in (0, 1), result.stderr + result.stdout
    payload = result.json
    assert isinstance(payload, dict)
    assert payload["ok"] is (result.exit_code == 0)
    return result.exit_code, payload


def pairs(items: list[dict[str, str]]) -> set[tuple[str, str]]:
    """(check, where) of each finding or note."""
    return {(item["check"], item["where"]) for item in items}


def lifecycle(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a lifecycle command through the CLI; the commit it made."""
    result = cli(*args, "--json", cwd=repo, env=env)
    assert result.exit_code == 0, result.stderr + result.stdout
    payload = result.json
    assert isinstance(payload, dict) and payload["commit"]
    return str(payload["commit"])


def deploy(
    repo: Path,
    stage: str = "dev",
    model: tuple[str, ...] = GPT5,
    env: dict[str, str] | None = None,
) -> str:
    return lifecycle(repo, "deploy", "support-bot", "--stage", stage, *model, *FALLBACK, env=env)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def at(stamp: str | int) -> dict[str, str]:
    """Committer and author date for one command (an ISO time or seconds since the epoch)."""
    text = f"{stamp} +0000" if isinstance(stamp, int) else stamp
    return {"GIT_COMMITTER_DATE": text, "GIT_AUTHOR_DATE": text}


def sign_args(key: SshKey | None) -> list[str]:
    return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.public}"] if key else []


def letter(repo: Path, commit: str) -> str:
    """What git itself says (`%G?`) of `commit`, against the work tree's allowed-signers file."""
    signers = f"gpg.ssh.allowedSignersFile={repo / SIGNERS}"
    return git(repo, "-c", signers, "log", "-1", "--format=%G?", commit)


def hand_commit(
    repo: Path,
    seq: int,
    *,
    stage: str = "dev",
    ref: str = "refs/heads/main",
    key: SshKey | None = None,
    tag: bool = True,
    also: tuple[str, ...] = (),
) -> str:
    """A lifecycle commit made with plain git: route file edited, trailers typed by hand.

    With `tag`, a matching annotated tag (signed when `key` is given), so the commit looks
    exactly like one modelctl made.
    """
    route = repo / ROUTE
    if not route.exists():
        route.parent.mkdir(exist_ok=True)
        route.write_text("apiVersion: modelctl/v1\nkind: Route\nname: support-bot\nstages: {}\n")
    with route.open("a") as fh:
        fh.write(f"# edited by hand: {stage} {seq}\n")
    git(repo, "add", ROUTE, *also)
    message = repo.parent / "message.txt"
    message.write_text(
        f"modelctl: deploy support-bot {stage}\n\n"
        "Modelctl-Action: deploy\n"
        "Modelctl-Route: support-bot\n"
        f"Modelctl-Stage: {stage}\n"
        f"Modelctl-Seq: {seq}\n"
        f"Modelctl-Ref: {ref}\n"
    )
    git(repo, *sign_args(key), "commit", "-q", "-F", str(message), *(["-S"] if key else []))
    commit = head(repo)
    if tag:
        name = tag_ref(stage, seq).removeprefix("refs/tags/")
        git(repo, *sign_args(key), "tag", "-s" if key else "-a", "-m", name, name, commit)
    return commit


def plain_route_edit(repo: Path, text: str) -> str:
    """Change the route file with an ordinary `git commit` (no modelctl trailers)."""
    with (repo / ROUTE).open("a") as fh:
        fh.write(f"# {text}\n")
    git(repo, "commit", "-qam", f"tweak the route by hand: {text}")
    return head(repo)


def git_bytes(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """git with exact bytes in and out (the conftest helper strips its output)."""
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True)
    return proc.stdout


# --- a clean history ------------------------------------------------------------------------


def test_clean_signed_history_passes(repo: Path, ci: SshKey) -> None:
    signed_registry(repo, ci)
    made = [
        deploy(repo),
        lifecycle(repo, "promote", "support-bot", "--to", "staging"),
        deploy(repo, model=GPT3),
        lifecycle(repo, "rollback", "support-bot", "--stage", "dev", "--reason", "test"),
    ]
    assert [letter(repo, commit) for commit in made] == ["G"] * 4
    code, payload = verify(repo)
    assert code == 0, payload["findings"]
    assert payload["findings"] == [] and payload["notes"] == []
    assert payload["lifecycle_commits"] == 4 and payload["tags"] == 4
    text = cli("verify", cwd=repo)
    assert text.exit_code == 0 and "history verified" in text.stdout + text.stderr


def test_verifier_showing_signatures_in_git_log_changes_nothing(repo: Path, ci: SshKey) -> None:
    git(repo, *sign_args(ci), "commit", "-q", "--amend", "--no-edit", "-S")  # a signed root too
    signed_registry(repo, ci)
    commit = deploy(repo)
    show = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "log.showSignature",
        "GIT_CONFIG_VALUE_0": "true",
    }
    assert "signature" in git(repo, "log", "-1", "--format=%H", commit, env=show)
    code, payload = verify(repo, env=show)
    assert code == 0, payload["findings"]


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["required", "optional", "off"])
def test_unsigned_lifecycle_commit_by_signing_mode(repo: Path, mode: str) -> None:
    if mode != "optional":  # the example registry says `signing: optional`
        set_signing(repo, mode)
    commit = hand_commit(repo, 1)
    unsigned = {("signature", commit), ("signature", tag_ref("dev", 1))}
    code, payload = verify(repo)
    if mode == "required":
        assert code == 1
        assert pairs(payload["findings"]) == unsigned and payload["notes"] == []
        assert all("is not signed" in f["message"] for f in payload["findings"])
    elif mode == "optional":
        assert code == 0 and payload["findings"] == []
        assert pairs(payload["notes"]) == unsigned
        assert all("(signing: optional)" in n["message"] for n in payload["notes"])
    else:
        assert code == 0 and payload["findings"] == [] and payload["notes"] == []


def test_stage_that_requires_signing_in_an_optional_registry(repo: Path) -> None:
    settings = repo / "modelctl.yaml"
    text = settings.read_text()
    staging = "  - name: staging\n"
    assert staging in text
    settings.write_text(text.replace(staging, staging + "    require_signed: true\n"))
    git(repo, "commit", "-qam", "staging requires signed changes")
    dev = hand_commit(repo, 1, stage="dev")
    staging_commit = hand_commit(repo, 1, stage="staging")
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {
        ("signature", staging_commit),
        ("signature", tag_ref("staging", 1)),
    }
    assert pairs(payload["notes"]) == {("signature", dev), ("signature", tag_ref("dev", 1))}


def test_key_not_in_allowed_signers_is_a_finding(repo: Path, ci: SshKey, mallory: SshKey) -> None:
    allow(repo, ci)
    set_signing(repo, "required")
    use_ssh_key(repo, mallory)
    commit = deploy(repo)
    assert letter(repo, commit) == "U"
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {("signature", commit), ("signature", tag_ref("dev", 1))}
    for finding in payload["findings"]:
        assert "not in the allowed-signers file" in finding["message"]


def test_commit_rewritten_with_its_signature_kept_is_bad(repo: Path, ci: SshKey) -> None:
    signed_registry(repo, ci)
    original = deploy(repo)
    raw = git_bytes(repo, "cat-file", "commit", original)
    assert b"gpgsig -----BEGIN SSH SIGNATURE-----" in raw
    forged = raw.replace(b"deploy support-bot dev\n", b"deploy support-bot dev (approved)\n", 1)
    assert forged != raw
    rewritten = git_bytes(repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=forged)
    rewritten_id = rewritten.decode().strip()
    git(repo, "update-ref", "refs/heads/main", rewritten_id, original)
    assert letter(repo, rewritten_id) == "B"
    code, payload = verify(repo)
    assert code == 1
    [bad] = [f for f in payload["findings"] if f["check"] == "signature"]
    assert bad["where"] == rewritten_id and "bad signature" in bad["message"]


def test_commit_adding_its_own_key_is_checked_against_its_parent(
    repo: Path, ci: SshKey, mallory: SshKey
) -> None:
    signed_registry(repo, ci)
    deploy(repo)
    signers = repo / SIGNERS
    signers.write_text(signers.read_text() + mallory.allowed_line)
    commit = hand_commit(repo, 2, key=mallory, also=(SIGNERS,))
    # Against the file in its own tree the signature would pass: that is the self-approval.
    assert letter(repo, commit) == "G"
    code, payload = verify(repo)
    assert code == 1
    signature = [f for f in payload["findings"] if f["check"] == "signature"]
    assert pairs(signature) == {("signature", commit), ("signature", tag_ref("dev", 2))}
    assert all("not in the allowed-signers file" in f["message"] for f in signature)
    scope = [f for f in payload["findings"] if f["check"] == "scope"]
    assert [(f["where"], f["message"]) for f in scope] == [
        (commit, f"lifecycle commit also changes {SIGNERS}")
    ]


def test_no_allowed_signers_file_trusts_no_key_whatever_the_local_config(
    repo: Path, ci: SshKey, tmp_path: Path
) -> None:
    git(repo, "rm", "-q", SIGNERS)
    git(repo, "commit", "-qm", "no allowed signers")
    set_signing(repo, "required")
    use_ssh_key(repo, ci)
    commit = deploy(repo)
    # The verifier's own git config trusts the key; the registry does not.
    mine = tmp_path / "my_allowed_signers"
    mine.write_text(ci.allowed_line)
    own_config = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "gpg.ssh.allowedSignersFile",
        "GIT_CONFIG_VALUE_0": str(mine),
    }
    assert git(repo, "log", "-1", "--format=%G?", commit, env=own_config) == "G"
    for env in (own_config, None):
        code, payload = verify(repo, env=env)
        assert code == 1
        assert pairs(payload["findings"]) == {
            ("signature", commit),
            ("signature", tag_ref("dev", 1)),
        }
        for finding in payload["findings"]:
            assert "not in the allowed-signers file" in finding["message"]


def expired_line(key: SshKey) -> str:
    return key.allowed_line.replace('namespaces="git"', 'namespaces="git",valid-before="20210101"')


def test_expired_key_with_an_honest_date_is_untrusted(repo: Path, tmp_path: Path) -> None:
    old = make_ssh_key(tmp_path / "keys", "old", "old@example")
    trust(repo, expired_line(old))
    set_signing(repo, "required")
    use_ssh_key(repo, old)
    commit = deploy(repo)
    assert letter(repo, commit) == "U"
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {("signature", commit), ("signature", tag_ref("dev", 1))}
    for finding in payload["findings"]:
        assert "(or is expired or untrusted)" in finding["message"]


def test_expired_key_backdated_into_its_window_is_caught_by_the_date(
    repo: Path, ci: SshKey, tmp_path: Path
) -> None:
    old = make_ssh_key(tmp_path / "keys", "old", "old@example")
    trust(repo, ci.allowed_line, expired_line(old))
    set_signing(repo, "required")
    use_ssh_key(repo, ci)
    deploy(repo)
    use_ssh_key(repo, old)
    backdated = lifecycle(
        repo, "promote", "support-bot", "--to", "staging", env=at("2020-06-01T12:00:00Z")
    )
    # git accepts it: valid-before is compared with the date the signer chose.
    assert letter(repo, backdated) == "G"
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("date", backdated)
    message = finding["message"]
    assert "2020-06-01T12:00:00Z is earlier than the previous lifecycle commit's" in message


def test_backdated_first_lifecycle_commit_is_caught_by_the_date(repo: Path, tmp_path: Path) -> None:
    """No lifecycle commit before it: its parent's date alone shows it was backdated."""
    old = make_ssh_key(tmp_path / "keys", "old", "old@example")
    trust(repo, expired_line(old))
    set_signing(repo, "required")
    use_ssh_key(repo, old)
    backdated = deploy(repo, env=at("2020-06-01T12:00:00Z"))
    assert letter(repo, backdated) == "G"
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("date", backdated)
    assert "2020-06-01T12:00:00Z is earlier than an earlier commit's" in finding["message"]


# --- tags -----------------------------------------------------------------------------------


def test_signed_tag_moved_to_another_name(repo: Path, ci: SshKey) -> None:
    signed_registry(repo, ci)
    deploy(repo)
    tag_object = git(repo, "rev-parse", tag_ref("dev", 1))
    git(repo, "update-ref", tag_ref("dev", 9), tag_object)
    # git still calls the moved tag good: only the ref name changed.
    git(repo, "-c", f"gpg.ssh.allowedSignersFile={repo / SIGNERS}", "verify-tag", tag_ref("dev", 9))
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("tag", tag_ref("dev", 9))
    assert "holds a tag object named 'modelctl/support-bot/dev/1'" in finding["message"]


def test_lightweight_lifecycle_tag(repo: Path) -> None:
    commit = deploy(repo)
    git(repo, "tag", "modelctl/support-bot/dev/2", commit)
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("tag", tag_ref("dev", 2))
    assert "is a lightweight tag" in finding["message"]


def test_lifecycle_commit_whose_tag_was_deleted(repo: Path) -> None:
    commit = deploy(repo)
    git(repo, "tag", "-d", "modelctl/support-bot/dev/1")
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("tag", commit)
    assert "has no tag modelctl/support-bot/dev/1" in finding["message"]


def test_signed_tag_on_an_unsigned_commit(repo: Path, ci: SshKey) -> None:
    signed_registry(repo, ci)
    commit = hand_commit(repo, 1, tag=False)
    name = tag_ref("dev", 1).removeprefix("refs/tags/")
    git(repo, *sign_args(ci), "tag", "-s", "-m", name, name, commit)
    git(repo, "-c", f"gpg.ssh.allowedSignersFile={repo / SIGNERS}", "verify-tag", name)
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("signature", commit)
    assert "lifecycle commit is not signed" in finding["message"]


# --- sequences and dates --------------------------------------------------------------------


def test_sequence_gap(repo: Path) -> None:
    deploy(repo)
    skipped = hand_commit(repo, 3)
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("sequence", skipped)
    assert "support-bot dev: skips to sequence 3; expected 2" in finding["message"]


def test_sequence_reuse(repo: Path) -> None:
    deploy(repo)
    deploy(repo, model=GPT3)
    # Its tag name is taken by the first #1, so the reuse also lacks its own tag.
    reused = hand_commit(repo, 1, tag=False)
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {("sequence", reused), ("tag", reused)}
    [finding] = [f for f in payload["findings"] if f["check"] == "sequence"]
    assert "support-bot dev: reuses sequence 1; expected 3" in finding["message"]


def test_committer_dates_going_backwards(repo: Path) -> None:
    start = int(time.time())  # after the registry's own commits; both dates below stay near now
    deploy(repo, env=at(start + 120))
    earlier = lifecycle(repo, "promote", "support-bot", "--to", "staging", env=at(start + 60))
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("date", earlier)
    assert "is earlier than the previous lifecycle commit's" in finding["message"]


def test_a_writer_whose_clock_is_behind_the_last_writers_keeps_dates_in_order(
    repo: Path,
) -> None:
    """Two CI runners share a registry and their clocks differ by a minute or two (within what
    verify allows ahead): the slower one's commit must not go below the faster one's, or every
    later verify fails on a history nobody tampered with."""
    ahead = int(time.time()) + 120
    first = deploy(repo, env=at(ahead))
    second = lifecycle(repo, "promote", "support-bot", "--to", "staging")
    assert int(git(repo, "show", "-s", "--format=%ct", second)) >= ahead
    assert git(repo, "rev-parse", f"{second}^") == first
    code, payload = verify(repo)
    assert code == 0, payload["findings"]


def test_committer_date_in_the_future(repo: Path) -> None:
    future = deploy(repo, env=at(int(time.time()) + 86400))
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("date", future)
    assert "is in the future" in finding["message"]


# --- immutability, scope and unattested changes ---------------------------------------------


@pytest.mark.parametrize("change", ["modified", "deleted"])
def test_committed_version_file_changed_later(repo: Path, change: str) -> None:
    # Adding a new version is how a registry grows: not a finding.
    shutil.copy(repo / "models/support-gpt/2026-05.yaml", repo / "models/support-gpt/2026-06.yaml")
    git(repo, "add", "models/support-gpt/2026-06.yaml")
    git(repo, "commit", "-qm", "add a version")
    assert verify(repo)[0] == 0
    path = "models/support-gpt/2026-03.yaml"
    if change == "modified":
        with (repo / path).open("a") as fh:
            fh.write("# quietly changed\n")
        git(repo, "commit", "-qam", "tweak a released model")
    else:
        git(repo, "rm", "-q", path)
        git(repo, "commit", "-qm", "drop a released model")
    code, payload = verify(repo)
    assert code == 1
    assert payload["findings"] == [
        {
            "check": "immutable",
            "where": head(repo),
            "message": f"{path} was {change} after it was committed",
        }
    ]


DATA = "datasets/support-golden/2026-04.jsonl"
DATASET = "datasets/support-golden/2026-04.yaml"


@pytest.mark.parametrize("change", ["modified", "deleted"])
def test_file_pinned_by_digest_changed_later(repo: Path, change: str) -> None:
    """A dataset's rows are part of its version: editing them is a version change in disguise."""
    if change == "modified":
        with (repo / DATA).open("a") as fh:
            fh.write('{"id": "extra", "input": "one more row"}\n')
        git(repo, "commit", "-qam", "add a row to the golden set")
    else:
        git(repo, "rm", "-q", DATA)
        git(repo, "commit", "-qm", "drop the golden set's rows")
    code, payload = verify(repo)
    assert code == 1
    assert payload["findings"] == [
        {
            "check": "immutable",
            "where": head(repo),
            "message": f"{DATA} was {change} after {DATASET} pinned it by digest",
        }
    ]


def test_prompt_template_file_pinned_later_then_edited(repo: Path, tmp_path: Path) -> None:
    """A file committed before any manifest pins it may change; once pinned it may not."""
    template = repo / "prompts/support-system/5.txt"
    template.write_text("draft\n")
    git(repo, "add", "prompts/support-system/5.txt")
    git(repo, "commit", "-qm", "draft a template")
    template.write_text("You answer support questions.\n")
    git(repo, "commit", "-qam", "finish the template")
    manifest = tmp_path / "prompt.yaml"
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    manifest.write_text(PROMPT_WITH_FILE.format(sha=digest))
    added = cli("add", "--file", str(manifest), cwd=repo)
    assert added.exit_code == 0, added.stderr
    assert verify(repo)[0] == 0
    template.write_text("You answer support questions. Be brief.\n")
    git(repo, "commit", "-qam", "tighten the template")
    for args in ((), ("--since", "HEAD~1")):  # a full run, and one resumed from the checkpoint
        code, payload = verify(repo, *args)
        assert code == 1
        assert payload["findings"] == [
            {
                "check": "immutable",
                "where": head(repo),
                "message": "prompts/support-system/5.txt was modified after "
                "prompts/support-system/5.yaml pinned it by digest",
            }
        ]


PROMPT_WITH_FILE = """\
apiVersion: modelctl/v1
kind: Prompt
name: support-system
version: "5"
template_file:
  path: prompts/support-system/5.txt
  sha256: {sha}
"""


def test_example_route_file_written_by_hand_is_unattested(tmp_path: Path) -> None:
    raw = make_registry(tmp_path / "reg")
    code, payload = verify(raw)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("unattested", head(raw))
    assert f"changes {ROUTE} without modelctl trailers" in finding["message"]


def test_route_file_changed_by_a_plain_commit_is_unattested(repo: Path) -> None:
    deploy(repo)
    assert verify(repo)[0] == 0
    edit = plain_route_edit(repo, "serve something else")
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("unattested", edit)
    assert f"changes {ROUTE} without modelctl trailers" in finding["message"]


def test_lifecycle_commit_made_for_another_branch(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "release")
    moved = deploy(repo)
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "release")
    assert head(repo) == moved
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("scope", moved)
    assert "was made for refs/heads/release but is on refs/heads/main" in finding["message"]


def test_changes_merged_in_from_a_side_branch_are_seen(repo: Path) -> None:
    deploy(repo)
    git(repo, "switch", "-q", "-c", "side")
    plain_route_edit(repo, "on a side branch")
    with (repo / "models/support-gpt/2026-03.yaml").open("a") as fh:
        fh.write("# quietly changed\n")
    git(repo, "commit", "-qam", "tweak a released model")
    git(repo, "switch", "-q", "main")
    shutil.copy(repo / "prompts/support-system/4.yaml", repo / "prompts/support-system/5.yaml")
    git(repo, "add", "prompts/support-system/5.yaml")
    git(repo, "commit", "-qm", "add a prompt version")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = head(repo)
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {("unattested", merge), ("immutable", merge)}


# --- --since --------------------------------------------------------------------------------


def test_since_reports_only_findings_after_the_revision(repo: Path) -> None:
    untagged = deploy(repo)
    git(repo, "tag", "-d", "modelctl/support-bot/dev/1")
    before = plain_route_edit(repo, "before")
    deploy(repo, model=GPT3)  # #2: the sequence carries on across the --since boundary
    after = plain_route_edit(repo, "after")
    code, payload = verify(repo)
    assert code == 1
    assert pairs(payload["findings"]) == {
        ("tag", untagged),
        ("unattested", before),
        ("unattested", after),
    }
    code, payload = verify(repo, "--since", before)
    assert code == 1
    assert pairs(payload["findings"]) == {("unattested", after)}
    assert payload["commits"] == 2 and payload["lifecycle_commits"] == 1
    assert verify(repo, "--since", after)[0] == 0
    bad = cli("verify", "--since", "no-such-revision", cwd=repo)
    assert bad.exit_code == 2 and "is not a commit or tag" in bad.stderr


def verify_fresh(repo: Path, *args: str) -> tuple[int, Any]:
    """verify with no checkpoint to resume from (its caches deleted first)."""
    shutil.rmtree(repo / ".git" / "modelctl", ignore_errors=True)
    return verify(repo, *args)


def without_time(result: tuple[int, Any]) -> tuple[int, Any]:
    code, payload = result
    return code, {k: v for k, v in payload.items() if k != "seconds"}


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints that keep two commits, so tests can reach past them."""
    monkeypatch.setattr("modelctl.audit.verify.WINDOW", 2)


def history_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the revisions verify reads the history of (`A..B` when it resumes)."""
    import modelctl.audit.verify as core

    calls: list[str] = []
    real = core._commits

    def spy(loc: Any, revisions: str) -> Any:
        calls.append(revisions)
        return real(loc, revisions)

    monkeypatch.setattr(core, "_commits", spy)
    return calls


def test_since_resumed_from_a_checkpoint_matches_a_full_run(
    repo: Path, small_window: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = history_reads(monkeypatch)
    first = deploy(repo)
    deploy(repo, model=GPT3)
    lifecycle(repo, "promote", "support-bot", "--to", "staging")
    assert verify(repo)[0] == 0  # leaves a checkpoint of the last two commits
    checkpoint = repo / ".git" / "modelctl" / "verify-checkpoint.json"
    saved = checkpoint.read_bytes()
    mark = head(repo)
    deploy(repo)
    plain_route_edit(repo, "after the checkpoint")
    reused = hand_commit(repo, 2, stage="staging", tag=False)
    # An old tag replaced by one for the wrong commit, and a new lightweight one.
    git(repo, "tag", "-f", "-a", "-m", "moved", "modelctl/support-bot/dev/2", reused)
    git(repo, "tag", "modelctl/support-bot/production/1", reused)
    # After, inside, at the start of and before the checkpoint's window.
    for since, resumes in ((mark, True), (f"{mark}~1", True), (first, True), (f"{first}~1", False)):
        checkpoint.write_bytes(saved)
        reads.clear()
        resumed = verify(repo, "--since", since)
        assert resumed[0] == 1
        assert all(".." in r for r in reads) is resumes
        assert without_time(resumed) == without_time(verify_fresh(repo, "--since", since))
    # A tag of a commit before the window changed: that cannot be judged from the window.
    verify(repo)
    reads.clear()
    verify(repo, "--since", "HEAD~1")
    assert reads == []  # resumed, with nothing new to read
    git(repo, "tag", "-f", "-a", "-m", "again", "modelctl/support-bot/dev/1", first)
    resumed = verify(repo, "--since", "HEAD~1")
    assert reads == [head(repo)]  # the whole history after all
    assert without_time(resumed) == without_time(verify_fresh(repo, "--since", "HEAD~1"))


def test_checkpoint_of_a_rewritten_branch_is_not_used(repo: Path, small_window: None) -> None:
    deploy(repo)
    kept = deploy(repo, model=GPT3)
    dropped = deploy(repo)
    assert verify(repo)[0] == 0
    git(repo, "reset", "-q", "--hard", kept)  # the checkpoint's commit leaves the branch
    again = hand_commit(repo, 3, tag=False)
    code, payload = verify(repo, "--since", kept)
    # The checkpoint's state is not resumed from; its anchor is not dropped: a finding.
    anchored = ("checkpoint", dropped)
    assert anchored in pairs(payload["findings"])
    payload["findings"] = [f for f in payload["findings"] if f["where"] != dropped]
    assert without_time((code, payload)) == without_time(verify_fresh(repo, "--since", kept))
    # The dropped #3's tag was fine at the checkpoint; now it points off the branch.
    assert code == 1
    assert pairs(payload["findings"]) == {("tag", again), ("tag", tag_ref("dev", 3))}


# --- GPG ------------------------------------------------------------------------------------


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, "GNUPGHOME": str(home)}
    proc = subprocess.run(["gpg", "--batch", *args], input=stdin, env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def gpg() -> Iterator[tuple[GpgKey, Path, Path]]:
    """(signer's key and home, a home that knows the key but not its trust, an empty home)."""
    assert have_gpg(), "the GPG signing tests need gpg (Debian/Ubuntu: apt install gnupg)"
    key = make_gpg_key()
    homes = [key.home]
    try:
        for _ in range(2):
            homes.append(Path(tempfile.mkdtemp(prefix="g")))  # short: gpg-agent's socket path
            homes[-1].chmod(0o700)
        untrusted, empty = homes[1], homes[2]
        _gpg(untrusted, "--import", stdin=_gpg(key.home, "--export", key.fingerprint))
        yield key, untrusted, empty
    finally:
        for home in homes:
            env = {**os.environ, "GNUPGHOME": str(home)}
            subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
            shutil.rmtree(home, ignore_errors=True)


def gpg_signed_deploy(repo: Path, key: GpgKey) -> str:
    set_signing(repo, "required")
    git(repo, "config", "user.signingkey", key.fingerprint)  # gpg.format defaults to openpgp
    return deploy(repo, env={"GNUPGHOME": str(key.home)})


def test_gpg_key_with_undefined_trust_is_a_finding(
    repo: Path, gpg: tuple[GpgKey, Path, Path]
) -> None:
    key, untrusted, _ = gpg
    commit = gpg_signed_deploy(repo, key)
    as_stranger = {"GNUPGHOME": str(untrusted)}
    # git's own exit code calls this commit fine; its %G? letter does not.
    proc = subprocess.run(
        ["git", "verify-commit", commit],
        cwd=repo,
        env={**os.environ, **as_stranger},
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "log", "-1", "--format=%G?", commit, env=as_stranger) == "U"
    code, payload = verify(repo, env=as_stranger)
    assert code == 1
    assert pairs(payload["findings"]) == {("signature", commit), ("signature", tag_ref("dev", 1))}
    for finding in payload["findings"]:
        assert "not in the allowed-signers file (or is expired or untrusted)" in finding["message"]
    # The signer's own keyring trusts the key ultimately: the same history then passes.
    code, payload = verify(repo, env={"GNUPGHOME": str(key.home)})
    assert code == 0 and payload["findings"] == []


def test_gpg_signature_without_the_public_key_cannot_be_checked(
    repo: Path, gpg: tuple[GpgKey, Path, Path]
) -> None:
    key, _, empty = gpg
    commit = gpg_signed_deploy(repo, key)
    code, payload = verify(repo, env={"GNUPGHOME": str(empty)})
    assert code == 1
    assert pairs(payload["findings"]) == {("signature", commit), ("signature", tag_ref("dev", 1))}
    for finding in payload["findings"]:
        assert "cannot be checked (missing key)" in finding["message"]


def pin_gpg(repo: Path, key: GpgKey, *fingerprints: str) -> None:
    """Commit `gpg_signers: fingerprints` to modelctl.yaml, signed with `key`."""
    settings = repo / "modelctl.yaml"
    listed = "".join(f"  - {f!r}\n" for f in fingerprints)
    settings.write_text(settings.read_text() + f"gpg_signers:\n{listed}")
    git(repo, "commit", "-S", "-qam", "pin GPG signers", env={"GNUPGHOME": str(key.home)})


def test_gpg_signers_pins_keys_whatever_the_keyring_trusts(
    repo: Path, tmp_path: Path, gpg: tuple[GpgKey, Path, Path]
) -> None:
    """The signer's keyring trusts its key ultimately; with gpg_signers set, only the listed
    fingerprints count (as listed in the parent, like the allowed-signers file)."""
    key, _, _ = gpg
    trusted = {"GNUPGHOME": str(key.home)}
    gpg_signed_deploy(repo, key)
    other = tmp_path / "other"
    shutil.copytree(repo, other, symlinks=True)
    # Listed (lower case, in gpg's groups of four): the next deploy passes.
    groups = [key.fingerprint[i : i + 4] for i in range(0, 40, 4)]
    spaced = (" ".join(groups[:5]) + "  " + " ".join(groups[5:])).lower()  # gpg's layout
    pin_gpg(repo, key, spaced)
    assert cli("validate", cwd=repo).exit_code == 0  # a fingerprint as gpg prints it is valid
    deploy(repo, model=GPT3, env=trusted)
    code, payload = verify(repo, env=trusted)
    assert code == 0, payload["findings"]
    # Another key listed: the same kind of deploy, signed by a key the keyring trusts, fails.
    pin_gpg(other, key, "0" * 40)
    bad = deploy(other, model=GPT3, env=trusted)
    code, payload = verify(other, env=trusted)
    assert code == 1
    assert pairs(payload["findings"]) == {("signature", bad), ("signature", tag_ref("dev", 2))}
    for finding in payload["findings"]:
        assert f"signed by GPG key {key.fingerprint}" in finding["message"]
        assert "which gpg_signers in modelctl.yaml does not list" in finding["message"]
    bad_pin = other / "modelctl.yaml"
    bad_pin.write_text(bad_pin.read_text().replace("0" * 40, "not-a-fingerprint"))
    problems = cli("validate", "--json", cwd=other)
    assert problems.exit_code == 1 and "gpg_signers" in problems.stdout


def test_unsigned_change_to_the_trust_settings_is_a_finding(
    repo: Path, ci: SshKey, mallory: SshKey
) -> None:
    """Under signing: required, a plain commit cannot add a key or turn signing off."""
    signed_registry(repo, ci)
    deploy(repo)
    assert verify(repo)[0] == 0
    # mallory adds her key in an unsigned commit, then signs a lifecycle commit with it
    (repo / SIGNERS).write_text(ci.allowed_line + mallory.allowed_line)
    git(repo, "-c", "commit.gpgSign=false", "commit", "-qam", "add a teammate")
    added = head(repo)
    code, payload = verify(repo)
    assert code == 1
    assert ("signature", added) in pairs(payload["findings"])
    assert any(
        "changing the signing settings or allowed signers is not signed" in f["message"]
        for f in payload["findings"]
    )
    settings = repo / "modelctl.yaml"
    settings.write_text(settings.read_text().replace("signing: required", "signing: off"))
    git(repo, "-c", "commit.gpgSign=false", "commit", "-qam", "signing off")
    off = head(repo)
    assert ("signature", off) in pairs(verify(repo)[1]["findings"])
    # the same changes signed by a key trusted in the parent are fine
    git(repo, "reset", "-q", "--hard", "HEAD~2")
    (repo / SIGNERS).write_text(ci.allowed_line + mallory.allowed_line)
    git(repo, *sign_args(ci), "commit", "-qam", "add a teammate", "-S")
    assert verify(repo)[0] == 0


# --- nothing a message says switches a check off -------------------------------------------


def commit_with_message(repo: Path, message: str) -> str:
    path = repo.parent / "message.txt"
    path.write_text(message)
    git(repo, "-c", "commit.gpgSign=false", "commit", "-q", "-a", "-F", str(path))
    return head(repo)


def test_an_init_trailer_does_not_exempt_a_route_edit(repo: Path, ci: SshKey) -> None:
    signed_registry(repo, ci)
    deploy(repo)
    assert verify(repo)[0] == 0
    route = repo / ROUTE
    route.write_text(route.read_text().replace("support-gpt@2026-05", "support-gpt@2026-03"))
    forged = commit_with_message(repo, "modelctl: init registry x\n\nModelctl-Action: init\n")
    code, payload = verify(repo)
    assert code == 1
    assert ("unattested", forged) in pairs(payload["findings"])


def test_the_commit_that_creates_the_registry_is_the_only_exempt_one(tmp_path: Path) -> None:
    """`modelctl init`'s commit (and an import's setup commit, which adds route files that bind
    nothing) has nothing to attest; a root commit adding a route that binds stages does."""
    folder = tmp_path / "fresh"
    assert cli("init", str(folder)).exit_code == 0
    assert verify(folder)[0] == 0
    route = folder / ROUTE
    route.write_text("apiVersion: modelctl/v1\nkind: Route\nname: support-bot\nstages: {}\n")
    git(folder, "add", ROUTE)
    added = commit_with_message(folder, "add a route by hand\n\nModelctl-Action: init\n")
    assert ("unattested", added) in pairs(verify(folder)[1]["findings"])


def test_a_stage_trailer_cannot_choose_a_weaker_signing_rule(repo: Path) -> None:
    """staging requires signatures; an unsigned commit that changes staging's binding while its
    trailers (and tag) say dev is held to staging's rule, and named for what it changed."""
    settings = repo / "modelctl.yaml"
    staging = "  - name: staging\n"
    settings.write_text(
        settings.read_text().replace(staging, staging + "    require_signed: true\n")
    )
    git(repo, "commit", "-qam", "staging requires signed changes")
    deploy(repo)
    route = repo / ROUTE
    text = route.read_text()
    dev = text[text.index("  dev:\n") :]
    route.write_text(text + dev.replace("  dev:\n", "  staging:\n", 1))
    forged = commit_with_message(
        repo,
        "modelctl: deploy support-bot dev\n\nModelctl-Action: deploy\nModelctl-Route: support-bot\n"
        "Modelctl-Stage: dev\nModelctl-Seq: 2\nModelctl-Ref: refs/heads/main\n",
    )
    git(repo, "tag", "-a", "-m", "dev 2", "modelctl/support-bot/dev/2", forged)
    code, payload = verify(repo)
    assert code == 1
    found = pairs(payload["findings"])
    assert {("signature", forged), ("signature", tag_ref("dev", 2)), ("scope", forged)} <= found
    [scope] = [f for f in payload["findings"] if f["check"] == "scope"]
    assert "changes what staging of support-bot serves" in scope["message"]
