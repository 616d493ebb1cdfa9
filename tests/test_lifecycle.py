"""deploy, promote, canary, rollback, status, history and resolve on real repositories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, cli_proc, git, make_registry, refs_snapshot
from fakekeys import fake_keys
from signing import allow, make_ssh_key, set_signing, use_ssh_key

GPT5 = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4"]
FALLBACK = ["--fallback", "support-claude@2026-05,support-system@4"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example registry with no route ever, so every route change is a lifecycle event."""
    return make_registry(tmp_path / "reg", routes=False)


def at(day: int, hour: int = 12) -> dict[str, str]:
    stamp = f"2026-03-{day:02d}T{hour:02d}:00:00Z"
    return {"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}


def run(repo: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> Any:
    result = cli(*args, "--json", cwd=repo, env=env)
    assert result.exit_code == code, result.stderr + result.stdout
    return result.json


def deploy_dev(repo: Path, model: list[str] = GPT5, env: dict[str, str] | None = None) -> Any:
    return run(repo, "deploy", "support-bot", "--stage", "dev", *model, *FALLBACK, env=env)


def test_deploy_is_one_commit_plus_tag(repo: Path) -> None:
    payload = deploy_dev(repo)
    assert payload["seq"] == 1 and payload["tag"] == "modelctl/support-bot/dev/1"
    head = git(repo, "rev-parse", "HEAD")
    assert payload["commit"] == head
    assert git(repo, "show", "--name-only", "--format=", "HEAD") == "routes/support-bot.yaml"
    assert git(repo, "rev-parse", "modelctl/support-bot/dev/1^{commit}") == head
    assert git(repo, "cat-file", "-t", "modelctl/support-bot/dev/1") == "tag"
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)")
    for line in [
        "Modelctl-Action: deploy",
        "Modelctl-Route: support-bot",
        "Modelctl-Stage: dev",
        "Modelctl-Seq: 1",
        "Modelctl-Ref: refs/heads/main",
    ]:
        assert line in trailers
    assert "Modelctl-Promotion-Id:" in trailers
    assert git(repo, "status", "--porcelain") == ""
    assert "support-gpt@2026-05" in (repo / "routes/support-bot.yaml").read_text()
    assert cli("validate", cwd=repo).exit_code == 0


def test_same_deploy_twice_is_a_no_op(repo: Path) -> None:
    deploy_dev(repo)
    before = refs_snapshot(repo)
    assert deploy_dev(repo)["noop"] is True
    assert refs_snapshot(repo) == before


def test_promote_follows_the_stage_path(repo: Path) -> None:
    deploy_dev(repo)
    payload = run(repo, "promote", "support-bot", "--to", "staging")
    assert payload["tag"] == "modelctl/support-bot/staging/1"
    assert payload["trailers"]["from"] == "dev"
    result = cli("promote", "support-bot", "--to", "dev", cwd=repo)
    assert result.exit_code == 2 and "first stage" in result.stderr
    result = cli("promote", "support-bot", "--to", "production", "--from", "dev", cwd=repo)
    assert result.exit_code == 2 and "skips staging" in result.stderr


def test_promote_from_an_empty_stage_is_refused(repo: Path) -> None:
    before = refs_snapshot(repo)
    result = cli("promote", "support-bot", "--to", "staging", cwd=repo)
    assert result.exit_code == 2 and "no route 'support-bot'" in result.stderr
    assert "modelctl deploy" in result.stderr  # how a route starts
    assert refs_snapshot(repo) == before


def test_gates_refuse_and_write_nothing(repo: Path) -> None:
    # production requires a fallback chain and, once it serves something, a passing eval run
    old = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]
    deploy_dev(repo, old)
    run(repo, "promote", "support-bot", "--to", "staging")
    first = run(repo, "promote", "support-bot", "--to", "production")
    assert any("serves nothing yet" in g["detail"] for g in first["gates"])  # bootstrap
    deploy_dev(repo)
    run(repo, "promote", "support-bot", "--to", "staging")
    before = refs_snapshot(repo)
    result = cli("promote", "support-bot", "--to", "production", cwd=repo)
    assert result.exit_code == 1
    assert "gates refused support-bot production" in result.stderr
    assert "requires a passing eval run" in result.stderr
    assert refs_snapshot(repo) == before
    result = cli("deploy", "support-bot", "--stage", "staging", *GPT5, cwd=repo)
    assert result.exit_code == 1 and "requires a fallback chain" in result.stderr


def test_deploy_refuses_unknown_models_and_stages(repo: Path) -> None:
    result = cli("deploy", "support-bot", "--stage", "dev", "--model", "nope@1", cwd=repo)
    assert result.exit_code == 2 and "no model 'nope@1'" in result.stderr
    result = cli("deploy", "support-bot", "--stage", "qa", *GPT5, cwd=repo)
    assert result.exit_code == 2 and "no stage 'qa' in modelctl.yaml" in result.stderr
    result = cli("deploy", "Bad", "--stage", "dev", *GPT5, cwd=repo)
    assert result.exit_code == 2


def _allow_production(repo: Path) -> None:
    """Drop production's eval gate so canary mechanics can be tested on their own."""
    settings = repo / "modelctl.yaml"
    text = settings.read_text()
    settings.write_text(text[: text.index("    eval_gate:")])
    git(repo, "commit", "-qam", "no eval gate on production for this test")


def test_canary_then_complete(repo: Path) -> None:
    _allow_production(repo)
    old = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]
    for stage in ("dev", "staging", "production"):
        run(repo, "deploy", "support-bot", "--stage", stage, *old, *FALLBACK)
    deploy_dev(repo)
    run(repo, "promote", "support-bot", "--to", "staging")
    payload = run(repo, "promote", "support-bot", "--to", "production", "--canary", "10")
    weights = {t["model"]: t["weight"] for t in payload["binding"]["targets"]}
    assert weights == {"support-gpt@2026-03": 90, "support-gpt@2026-05": 10}
    assert payload["trailers"]["canary"] == "10"
    payload = run(repo, "promote", "support-bot", "--to", "production", "--canary", "50")
    weights = {t["model"]: t["weight"] for t in payload["binding"]["targets"]}
    assert weights == {"support-gpt@2026-03": 50, "support-gpt@2026-05": 50}
    payload = run(repo, "promote", "support-bot", "--to", "production")
    assert [t["model"] for t in payload["binding"]["targets"]] == ["support-gpt@2026-05"]
    result = cli("promote", "support-bot", "--to", "production", "--canary", "10", cwd=repo)
    assert result.exit_code == 2 and "already serves only the candidate" in result.stderr


def test_canary_needs_something_to_canary_beside(repo: Path) -> None:
    _allow_production(repo)
    deploy_dev(repo)
    run(repo, "promote", "support-bot", "--to", "staging")
    result = cli("promote", "support-bot", "--to", "production", "--canary", "10", cwd=repo)
    assert result.exit_code == 2 and "nothing to canary beside" in result.stderr
    result = cli("promote", "support-bot", "--to", "staging", "--canary", "100", cwd=repo)
    assert result.exit_code == 2


def test_rollback_restores_previous_binding_as_a_new_commit(repo: Path) -> None:
    old = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]
    deploy_dev(repo, old, env=at(1))
    first = git(repo, "rev-parse", "HEAD")
    deploy_dev(repo, env=at(3))
    payload = run(
        repo, "rollback", "support-bot", "--stage", "dev", "--reason", "answers too long",
        "--detected-at", "2026-03-05T10:00:00+01:00", env=at(5),
    )  # fmt: skip
    assert payload["seq"] == 3
    assert payload["binding"]["targets"][0]["model"] == "support-gpt@2026-03"
    assert payload["trailers"]["rollback_of"] == "modelctl/support-bot/dev/2"
    assert payload["trailers"]["restores"] == "modelctl/support-bot/dev/1"
    assert payload["trailers"]["reason"] == "answers too long"
    assert payload["trailers"]["detected_at"] == "2026-03-05T09:00:00Z"
    assert git(repo, "merge-base", "--is-ancestor", first, "HEAD") == ""  # history kept
    # rolling back again does not undo the rollback; --to 2 does, on purpose
    assert cli("rollback", "support-bot", "--stage", "dev", cwd=repo).exit_code == 2
    again = run(repo, "rollback", "support-bot", "--stage", "dev", "--to", "2")
    assert again["binding"]["targets"][0]["model"] == "support-gpt@2026-05"
    # --to names an event
    to = run(repo, "rollback", "support-bot", "--stage", "dev", "--to", "1")
    assert to["binding"]["targets"][0]["model"] == "support-gpt@2026-03"
    assert to["trailers"]["restores"] == "modelctl/support-bot/dev/1"


def test_rollback_without_history_is_refused(repo: Path) -> None:
    result = cli("rollback", "support-bot", "--stage", "dev", cwd=repo)
    assert result.exit_code == 2 and "no route 'support-bot'" in result.stderr
    deploy_dev(repo)
    result = cli("rollback", "support-bot", "--stage", "dev", cwd=repo)
    assert result.exit_code == 2 and "one binding only" in result.stderr
    result = cli(
        "rollback", "support-bot", "--stage", "dev", "--detected-at", "yesterday", cwd=repo
    )
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.stderr


def test_dry_run_writes_nothing(repo: Path) -> None:
    before = refs_snapshot(repo)
    payload = run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--dry-run")
    assert payload["dry_run"] is True and payload["commit"] is None
    assert refs_snapshot(repo) == before
    assert not (repo / "routes/support-bot.yaml").exists()


def test_refuses_when_route_file_has_uncommitted_edits(repo: Path) -> None:
    deploy_dev(repo)
    route = repo / "routes/support-bot.yaml"
    route.write_text(route.read_text() + "# my edit\n")
    before = refs_snapshot(repo)
    result = cli("promote", "support-bot", "--to", "staging", cwd=repo)
    assert result.exit_code == 3 and "uncommitted changes" in result.stderr
    assert refs_snapshot(repo) == before
    assert route.read_text().endswith("# my edit\n")


def test_status_and_history(repo: Path) -> None:
    deploy_dev(repo, env=at(1))
    run(repo, "promote", "support-bot", "--to", "staging", env=at(2))
    status = run(repo, "status")
    route = status["routes"][0]
    stages = {s["stage"]: s for s in route["stages"]}
    assert stages["dev"]["event"]["tag"] == "modelctl/support-bot/dev/1"
    assert stages["staging"]["event"]["action"] == "promote"
    assert stages["production"]["binding"] is None
    assert run(repo, "status", "support-bot")["routes"][0]["route"] == "support-bot"
    history = run(repo, "history", "support-bot")
    assert [(e["stage"], e["seq"], e["action"]) for e in history["events"]] == [
        ("dev", 1, "deploy"),
        ("staging", 1, "promote"),
    ]
    assert history["events"][0]["time"] == "2026-03-01T12:00:00Z"
    assert history["events"][0]["signature"] == "N"
    only = run(repo, "history", "support-bot", "--stage", "staging")
    assert len(only["events"]) == 1


def test_unattested_change_shows_in_history(repo: Path) -> None:
    deploy_dev(repo)
    route = repo / "routes/support-bot.yaml"
    route.write_text(route.read_text().replace("weight: 100", "weight: 50"))
    git(repo, "commit", "-qam", "hand edit")
    events = run(repo, "history", "support-bot")["events"]
    assert events[-1]["action"] == "unattested" and events[-1]["seq"] is None
    # the next deploy still numbers from the last modelctl event
    payload = deploy_dev(repo)
    assert payload["seq"] == 2


def test_history_reads_a_committed_route_whatever_secret_it_looks_like_it_holds(
    repo: Path,
) -> None:
    """A key-shaped value is refused by validate and the hooks; history still says what the
    committed file served, rather than skipping the commit as unreadable."""
    deploy_dev(repo)
    route = repo / "routes/support-bot.yaml"
    key = fake_keys()["openai-project"]
    text = route.read_text().replace("weight: 100", "weight: 50")
    route.write_text(text.replace("stages:", f"match:\n  team: {key}\nstages:", 1))
    git(repo, "commit", "-qam", "hand edit")
    assert cli("validate", cwd=repo).exit_code == 1
    events = run(repo, "history", "support-bot")["events"]
    assert events[-1]["action"] == "unattested"
    assert events[-1]["binding"]["targets"][0]["weight"] == 50


def test_history_cached_on_a_merged_side_branch_is_not_reused(repo: Path) -> None:
    deploy_dev(repo)
    git(repo, "switch", "-q", "-c", "side")
    side = deploy_dev(repo, ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"])
    run(repo, "history", "support-bot")  # caches the route's events as of the side branch
    run(repo, "status")
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = git(repo, "rev-parse", "HEAD")
    # On main's first-parent history the change arrives with the merge, not the side commit.
    events = run(repo, "history", "support-bot")["events"]
    assert [(e["commit"], e["action"]) for e in events][1:] == [(merge, "unattested")]
    assert side["commit"] not in {e["commit"] for e in events}
    status = run(repo, "status")["routes"][0]["stages"][0]
    assert status["event"]["commit"] == merge


def test_resolve_at_before_and_after_each_event(repo: Path) -> None:
    old = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]
    deploy_dev(repo, old, env=at(1))
    deploy_dev(repo, env=at(3))
    run(repo, "rollback", "support-bot", "--stage", "dev", env=at(5))

    def served(when: str) -> str | None:
        payload = run(repo, "resolve", "support-bot", "--stage", "dev", "--at", when)
        binding = payload["binding"]
        return binding["targets"][0]["model"] if binding else None

    assert served("2026-03-01T11:59:59Z") is None
    assert served("2026-03-01T12:00:00Z") == "support-gpt@2026-03"
    assert served("2026-03-01T12:00:01Z") == "support-gpt@2026-03"
    assert served("2026-03-03T11:59:59Z") == "support-gpt@2026-03"
    assert served("2026-03-03T12:00:00Z") == "support-gpt@2026-05"
    assert served("2026-03-05T11:59:59Z") == "support-gpt@2026-05"
    assert served("2026-03-05T12:00:00Z") == "support-gpt@2026-03"
    assert served("2026-03-05T13:00:00+01:00") == "support-gpt@2026-03"
    assert served("2026-03-05T12:59:59+01:00") == "support-gpt@2026-05"
    payload = run(repo, "resolve", "support-bot", "--stage", "dev", "--at", "2026-03-04")
    assert payload["assumed_utc"] is True and "UTC assumed" in payload["at"]
    assert payload["event"]["tag"] == "modelctl/support-bot/dev/2"
    # a commit or a tag works as --at too
    payload = run(
        repo, "resolve", "support-bot", "--stage", "dev", "--at", "modelctl/support-bot/dev/2"
    )
    assert payload["binding"]["targets"][0]["model"] == "support-gpt@2026-05"
    bad = cli("resolve", "support-bot", "--stage", "dev", "--at", "soon", cwd=repo)
    assert bad.exit_code == 2 and "neither an ISO 8601 time nor a commit" in bad.stderr


def test_signing_required_without_a_key_is_refused_before_writing(repo: Path) -> None:
    set_signing(repo, "required")
    before = refs_snapshot(repo)
    result = cli("deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, cwd=repo)
    assert result.exit_code == 4
    assert "requires signed commits" in result.stderr and "user.signingkey" in result.stderr
    assert refs_snapshot(repo) == before


def test_signed_writes_verify(repo: Path, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path / "keys", "ci", "ci-bot@example")
    allow(repo, key)
    set_signing(repo, "required")
    use_ssh_key(repo, key)
    payload = deploy_dev(repo)
    assert payload["signed"] is True
    signers = repo / ".modelctl/allowed_signers"
    check = ["-c", f"gpg.ssh.allowedSignersFile={signers}"]
    assert git(repo, *check, "log", "-1", "--format=%G? %GS") == "G ci-bot@example"
    git(repo, *check, "verify-tag", "modelctl/support-bot/dev/1")
    header = git(repo, "cat-file", "-p", "modelctl/support-bot/dev/1")
    assert "tag modelctl/support-bot/dev/1" in header and "BEGIN SSH SIGNATURE" in header
    history = run(repo, "history", "support-bot")
    assert history["events"][0]["signature"] == "G"
    assert history["events"][0]["signer"] == "ci-bot@example"
    resolved = run(repo, "resolve", "support-bot", "--stage", "dev", "--at", "HEAD")
    assert resolved["event"]["signer"] == "ci-bot@example"


def test_push_to_a_bare_remote(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    payload = run(
        repo, "deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--push", "origin"
    )
    assert payload["pushed"] == "origin"
    assert git(remote, "rev-parse", "main") == payload["commit"] == git(repo, "rev-parse", "HEAD")
    assert git(remote, "rev-parse", "modelctl/support-bot/dev/1^{commit}") == payload["commit"]
    assert git(repo, "status", "--porcelain") == ""


def test_read_commands_work_on_a_detached_head(repo: Path) -> None:
    """CI checkouts leave HEAD detached; every read-only question still answers."""
    deploy_dev(repo)
    run(repo, "promote", "support-bot", "--to", "staging")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    assert run(repo, "status")["branch"] == "HEAD"
    assert len(run(repo, "history", "support-bot")["events"]) == 2
    assert run(repo, "resolve", "support-bot", "--stage", "dev", "--at", "HEAD")["binding"]
    assert cli("verify", cwd=repo).exit_code == 0
    result = cli("deploy", "support-bot", "--stage", "dev", *GPT5, cwd=repo)
    assert result.exit_code == 2 and "HEAD is detached" in result.stderr


def test_status_of_every_route_reads_route_files_alone(repo: Path, tmp_path: Path) -> None:
    """All routes' status reads modelctl.yaml and routes/ only: a broken route still shows
    with its problem, a broken model manifest is not its business, and no routes is empty."""
    deploy_dev(repo)
    (repo / "routes/broken.yaml").write_text("apiVersion: modelctl/v1\nkind: Route\n")
    (repo / "routes/notes.txt").write_text("not a route\n")
    (repo / "models/support-gpt/9.yaml").write_text("kind: [unclosed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a broken route, a broken model and a note")
    payload = run(repo, "status")
    assert [r["route"] for r in payload["routes"]] == ["broken", "support-bot"]
    [broken] = [r for r in payload["routes"] if r["route"] == "broken"]
    assert broken["stages"] == [] or all(s["binding"] is None for s in broken["stages"])
    assert any("name" in problem for problem in broken["problems"]), broken["problems"]
    empty = make_registry(tmp_path / "empty", routes=False)
    assert run(empty, "status")["routes"] == []


def test_status_of_every_route_is_cached_by_commit(repo: Path) -> None:
    deploy_dev(repo)
    first = run(repo, "status")
    assert list((repo / ".git/modelctl/status").glob("*.json"))
    assert run(repo, "status") == first  # from the cache, identical
    run(repo, "promote", "support-bot", "--to", "staging")
    after = run(repo, "status")  # a new commit: a new answer
    stages = {s["stage"]: s for s in after["routes"][0]["stages"]}
    assert stages["staging"]["event"]["tag"] == "modelctl/support-bot/staging/1"
    # A warm `status --json` prints the cached text as it is, byte for byte what a cold one
    # prints; the human output reads the same cache.
    shutil.rmtree(repo / ".git/modelctl")
    cold = cli_proc("status", "--json", cwd=repo)
    warm = cli_proc("status", "--json", cwd=repo)
    assert cold.exit_code == warm.exit_code == 0 and warm.stdout == cold.stdout
    assert json.loads(warm.stdout) == after
    [cache] = (repo / ".git/modelctl/status").glob("*.json")
    cache.write_text(cache.read_text().replace('"support-bot"', '"served-from-the-cache"', 1))
    assert '"route": "served-from-the-cache"' in cli_proc("status", "--json", cwd=repo).stdout
    assert "served-from-the-cache" in cli_proc("status", cwd=repo).stdout
    cache.write_text("not json")  # a damaged cache is recomputed
    assert json.loads(cli_proc("status", "--json", cwd=repo).stdout) == after


def test_gating_event_follows_rollbacks_to_what_they_restore() -> None:
    from modelctl.lifecycle.history import Event, gating_event

    def event(seq: int, action: str, binding: str | None, **trailers: str) -> Event:
        b = {"targets": [{"model": binding}]} if binding else None
        return Event("r", "prod", action, seq, f"c{seq}", seq, "a", "a@x", b, None, trailers)

    gated = event(1, "promote", "m@1", eval="e1")
    ungated = event(2, "promote", "m@2")
    back = event(3, "rollback", "m@1", restores="modelctl/r/prod/1")
    assert gating_event([gated]) is gated
    assert gating_event([gated, ungated]) is None
    assert gating_event([gated, ungated, back]) is gated
    # a rollback of a rollback reaches the original gate; a rollback's own eval wins
    again = event(4, "rollback", "m@1", restores="modelctl/r/prod/3")
    assert gating_event([gated, ungated, back, again]) is gated
    own = event(5, "rollback", "m@1", restores="modelctl/r/prod/1", eval="e5")
    assert gating_event([gated, ungated, own]) is own
    # restores that loop, and a stage that serves nothing, are not gated
    loop = event(6, "rollback", "m@1", restores="modelctl/r/prod/6")
    assert gating_event([loop]) is None
    assert gating_event([gated, event(7, "rollback", None)]) is None
    assert gating_event([]) is None


def test_a_bad_binding_argument_names_its_flag(repo: Path) -> None:
    result = cli("deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-05",
                 "--fallback", "support-claude", cwd=repo)  # fmt: skip
    assert result.exit_code == 2
    assert "--fallback 'support-claude':" in " ".join(result.stderr.split())


# --- rollback: back to the last good release --------------------------------------------------

OLD = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]


def _canary_setup(repo: Path) -> None:
    """Production serves OLD (production/1); NEW waits in staging."""
    _allow_production(repo)
    for stage in ("dev", "staging", "production"):
        run(repo, "deploy", "support-bot", "--stage", stage, *OLD, *FALLBACK, env=at(1))
    deploy_dev(repo, env=at(2))
    run(repo, "promote", "support-bot", "--to", "staging", env=at(2, 13))


def _models(payload: Any) -> dict[str, int]:
    return {t["model"]: t["weight"] for t in payload["binding"]["targets"]}


def test_rollback_after_a_completed_canary_restores_the_last_good_release(repo: Path) -> None:
    _canary_setup(repo)
    run(repo, "promote", "support-bot", "--to", "production", "--canary", "10", env=at(3))
    run(repo, "promote", "support-bot", "--to", "production", env=at(4))
    payload = run(repo, "rollback", "support-bot", "--stage", "production", env=at(5))
    # not the 90/10 canary: the bad version keeps no traffic
    assert _models(payload) == {"support-gpt@2026-03": 100}
    assert payload["trailers"]["restores"] == "modelctl/support-bot/production/1"
    assert payload["trailers"]["rollback_of"] == "modelctl/support-bot/production/3"
    restore = payload["restore"]
    assert (
        restore["mode"] == "last-good" and restore["event"] == "modelctl/support-bot/production/1"
    )
    assert restore["rolled_back"] == ["support-gpt@2026-05+support-system@4"]
    assert "without support-gpt@2026-05+support-system@4" in restore["why"]
    assert [(s["event"], s["why"]) for s in restore["skipped"]] == [
        (
            "modelctl/support-bot/production/2",
            "serves support-gpt@2026-05+support-system@4 (canary 10%)",
        )
    ]
    # the text says the same
    run(repo, "promote", "support-bot", "--to", "production", "--canary", "20", env=at(6))
    run(repo, "promote", "support-bot", "--to", "production", env=at(7))
    result = cli("rollback", "support-bot", "--stage", "production", "--dry-run", cwd=repo)
    text = result.stdout + result.stderr
    assert "restores modelctl/support-bot/production/4" in text
    assert "skipped modelctl/support-bot/production/5 (promote)" in text


def test_rollback_of_a_rollback_and_of_a_prompt_only_change(repo: Path) -> None:
    """A target is model plus prompt: a new prompt on the same model is what is rolled back;
    rolling back the rollback brings it back only when asked for by --to."""
    same_model = ["--model", "support-gpt@2026-05", "--prompt", "support-system@3"]
    deploy_dev(repo, same_model, env=at(1))
    deploy_dev(repo, env=at(2))
    back = run(repo, "rollback", "support-bot", "--stage", "dev", env=at(3))
    assert back["binding"]["targets"][0]["prompt"] == "support-system@3"
    assert back["restore"]["rolled_back"] == ["support-gpt@2026-05+support-system@4"]
    # A plain rollback never brings back what a rollback took off; --to does, on purpose.
    again = cli("rollback", "support-bot", "--stage", "dev", cwd=repo, env=at(4))
    assert again.exit_code == 2 and "--to" in again.stderr
    again_to = run(repo, "rollback", "support-bot", "--stage", "dev", "--to", "2", env=at(4))
    assert again_to["binding"]["targets"][0]["prompt"] == "support-system@4"
    assert again_to["trailers"]["restores"] == "modelctl/support-bot/dev/2"


def test_a_plain_rollback_never_brings_back_what_a_rollback_took_off(repo: Path) -> None:
    """Two people answering one incident both run `rollback` (or one retries it, or loses a
    compare-and-swap race and re-plans on the new tip): the second must not undo the first and
    put the regression back, which on a gated stage would also skip the rule that a rolled-back
    binding returns only with a fresh eval. It goes further back, or refuses naming --to."""
    _canary_setup(repo)  # production/1 serves OLD; NEW is on staging
    rollback = ["rollback", "support-bot", "--stage", "production"]
    run(repo, "promote", "support-bot", "--to", "production", env=at(3))  # production/2: NEW
    first = run(repo, *rollback, "-m", "regression", env=at(4))  # production/3: OLD
    assert _models(first) == {"support-gpt@2026-03": 100}
    before = refs_snapshot(repo)
    second = cli(*rollback, cwd=repo, env=at(5))
    assert second.exit_code == 2, second.stderr + second.stdout
    assert "modelctl/support-bot/production/3" in second.stderr and "--to" in second.stderr
    assert refs_snapshot(repo) == before
    # The same after an aborted canary: the canary does not come back.
    run(repo, "promote", "support-bot", "--to", "production", "--canary", "10", env=at(6))
    run(repo, *rollback, "--abort-canary", env=at(7))
    before = refs_snapshot(repo)
    third = cli(*rollback, cwd=repo, env=at(8))
    assert third.exit_code == 2, third.stderr + third.stdout
    assert "modelctl/support-bot/production/5" in third.stderr
    assert refs_snapshot(repo) == before


def test_rollback_of_a_change_without_new_targets_restores_the_binding_before_it(
    repo: Path,
) -> None:
    deploy_dev(repo, env=at(1))
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5, env=at(2))  # drops the fallback
    payload = run(repo, "rollback", "support-bot", "--stage", "dev", env=at(3))
    assert payload["binding"]["fallback"] and payload["trailers"]["restores"].endswith("/dev/1")
    assert "no new target" in payload["restore"]["why"]


def test_rollback_warns_when_the_restored_fallback_chain_holds_the_bad_version(
    repo: Path,
) -> None:
    old_first = [*OLD, "--fallback", "support-gpt@2026-05,support-system@4"]
    run(repo, "deploy", "support-bot", "--stage", "dev", *old_first, env=at(1))
    deploy_dev(repo, env=at(2))
    result = cli("rollback", "support-bot", "--stage", "dev", "--json", cwd=repo, env=at(3))
    payload: Any = result.json
    assert payload["trailers"]["restores"] == "modelctl/support-bot/dev/1"
    assert any("still falls back to support-gpt@2026-05" in w for w in payload["warnings"])


def test_rollback_refuses_when_every_earlier_binding_serves_the_bad_version(repo: Path) -> None:
    deploy_dev(repo, env=at(1))
    route = repo / "routes/support-bot.yaml"
    text = route.read_text()
    route.write_text(text[: text.index("stages:")] + "stages: {}\n")
    git(repo, "commit", "-qam", "hand edit: dev serves nothing", env=at(2))
    deploy_dev(repo, env=at(3))
    before = refs_snapshot(repo)
    result = cli("rollback", "support-bot", "--stage", "dev", cwd=repo, env=at(4))
    assert result.exit_code == 2
    assert "every earlier binding of dev on route support-bot serves" in result.stderr
    assert "--to SEQ|TAG" in result.stderr and "deploy" in result.stderr
    assert refs_snapshot(repo) == before


def test_abort_canary_restores_the_pre_canary_binding_in_one_command(repo: Path) -> None:
    _canary_setup(repo)
    promote = ["promote", "support-bot", "--to", "production"]
    rollback = ["rollback", "support-bot", "--stage", "production"]
    result = cli(*rollback, "--abort-canary", cwd=repo)
    assert result.exit_code == 2 and "is not running a canary" in result.stderr
    run(repo, *promote, "--canary", "10", env=at(3))
    run(repo, *promote, "--canary", "50", env=at(4))
    result = cli(*rollback, "--abort-canary", "--to", "1", cwd=repo)
    assert result.exit_code == 2 and "give one" in result.stderr
    payload = run(repo, *rollback, "--abort-canary", env=at(5))
    assert _models(payload) == {"support-gpt@2026-03": 100}
    assert payload["restore"]["mode"] == "abort-canary"
    assert payload["trailers"]["restores"] == "modelctl/support-bot/production/1"
    assert [s["event"] for s in payload["restore"]["skipped"]] == [
        "modelctl/support-bot/production/2"
    ]
    # nothing is running now, and a completed canary is not one either
    result = cli(*rollback, "--abort-canary", cwd=repo)
    assert result.exit_code == 2 and "is not running a canary" in result.stderr
    run(repo, *promote, "--canary", "10", env=at(6))
    run(repo, *promote, env=at(7))
    result = cli(*rollback, "--abort-canary", cwd=repo)
    assert result.exit_code == 2 and "without --canary" in result.stderr


def test_status_marks_a_stage_that_is_mid_canary(repo: Path) -> None:
    _canary_setup(repo)
    run(repo, "promote", "support-bot", "--to", "production", "--canary", "10", env=at(3))

    def production() -> Any:
        stages = run(repo, "status")["routes"][0]["stages"]
        return {s["stage"]: s for s in stages}["production"]

    canary = production()["canary"]
    assert canary["percent"] == 10 and canary["source_stage"] == "staging"
    assert canary["candidate"] == "support-gpt@2026-05+support-system@4"
    assert canary["started"] == "modelctl/support-bot/production/2"
    assert production()["canary"] == canary  # the cached status says the same
    text = cli("status", "support-bot", cwd=repo).stdout
    assert "canary 10% of support-gpt@2026-05+support-system@4" in text
    assert run(repo, "status")["routes"][0]["stages"][0]["canary"] is None
    run(repo, "promote", "support-bot", "--to", "production", env=at(4))
    assert production()["canary"] is None
    assert "canary 10%" not in cli("status", cwd=repo).stdout


def test_deploy_and_promote_say_why(repo: Path) -> None:
    payload = run(
        repo, "deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "-m", "new prompt"
    )
    assert payload["trailers"]["reason"] == "new prompt"
    payload = run(repo, "promote", "support-bot", "--to", "staging", "--reason", "dev looked ok")
    assert payload["trailers"]["reason"] == "dev looked ok"
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)")
    assert "Modelctl-Reason: dev looked ok" in trailers
    events = run(repo, "history", "support-bot")["events"]
    assert [e["reason"] for e in events] == ["new prompt", "dev looked ok"]
    assert "reason: dev looked ok" in cli("history", "support-bot", cwd=repo).stdout
    stages = {s["stage"]: s for s in run(repo, "status")["routes"][0]["stages"]}
    assert stages["staging"]["event"]["reason"] == "dev looked ok"
    assert "reason: new prompt" in cli("status", cwd=repo).stdout
    said = cli("promote", "support-bot", "--to", "production", "-m", "staging [ok]", cwd=repo)
    assert "reason: staging [ok]" in said.stdout + said.stderr


# --- detected-at and relative times -----------------------------------------------------------


def test_detected_at_lies_between_the_release_and_now(repo: Path) -> None:
    _canary_setup(repo)
    run(repo, "promote", "support-bot", "--to", "production", "--canary", "10", env=at(3))
    run(repo, "promote", "support-bot", "--to", "production", env=at(4))
    rollback = ["rollback", "support-bot", "--stage", "production", "--dry-run", "--json"]
    before = refs_snapshot(repo)

    def detected(when: str) -> Any:
        return cli(*rollback, "--detected-at", when, cwd=repo, env=at(5))

    # before the canary that brought the bad version went live
    result = detected("2026-03-03T11:00:00Z")
    assert result.exit_code == 2
    assert "before modelctl/support-bot/production/2 went live (2026-03-03T12:00:00Z)" in (
        result.stderr
    )
    assert "between 2026-03-03T12:00:00Z and now (2026-03-05T12:00:00Z)" in result.stderr
    # in the future (of the rollback's own clock)
    result = detected("2026-03-05T13:00:00Z")
    assert result.exit_code == 2 and "in the future" in result.stderr
    assert refs_snapshot(repo) == before
    # during the canary, within the clock skew either side, now, and relative to now
    for when, stamp in [
        ("2026-03-03T13:00:00Z", "2026-03-03T13:00:00Z"),
        ("2026-03-03T11:56:00Z", "2026-03-03T11:56:00Z"),
        ("2026-03-05T12:04:00Z", "2026-03-05T12:04:00Z"),
        ("now", "2026-03-05T12:00:00Z"),
        ("30m ago", "2026-03-05T11:30:00Z"),
        ("45s ago", "2026-03-05T11:59:15Z"),
        ("2h ago", "2026-03-05T10:00:00Z"),
        ("1d ago", "2026-03-04T12:00:00Z"),
    ]:
        result = detected(when)
        assert result.exit_code == 0, (when, result.stderr)
        assert result.json["trailers"]["detected_at"] == stamp  # type: ignore[index]
    result = detected("3 fortnights ago")
    assert result.exit_code == 2 and "30m ago" in result.stderr


def test_relative_times_for_resolve_and_report(repo: Path) -> None:
    deploy_dev(repo)  # committed now
    resolve = ["resolve", "support-bot", "--stage", "dev", "--at"]
    assert run(repo, *resolve, "now")["event"]["tag"] == "modelctl/support-bot/dev/1"
    assert run(repo, *resolve, "1d ago")["binding"] is None
    result = cli(*resolve, "last tuesday", cwd=repo)
    assert result.exit_code == 2 and "'now'" in result.stderr and "2h ago" in result.stderr
    assert run(repo, "report", "--since", "1d ago")["rollbacks"] == []
    result = cli("report", "--since", "soon", cwd=repo)
    assert result.exit_code == 2 and "--since 'soon'" in result.stderr


def test_parse_time_accepts_relative_times_only_from_users() -> None:
    from datetime import UTC, datetime, timedelta

    from modelctl.lifecycle.history import parse_time

    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert parse_time("now", now) == (now, False)
    assert parse_time("2h ago", now) == (now - timedelta(hours=2), False)
    assert parse_time(" 1.5d AGO ", now) == (now - timedelta(days=1.5), False)
    assert parse_time("2h ago") is None and parse_time("now") is None  # data never is relative
    assert parse_time("2h", now) is None and parse_time("-2h ago", now) is None
    assert parse_time("99999999999999d ago", now) is None
