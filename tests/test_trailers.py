"""Free text in commit messages never becomes structure, and no message can crash a reader.

Every field modelctl writes into a commit or tag message goes through `commits.trailers`,
which encodes it; `history.parse_trailers` decodes it. `git log` output is read with markers no
message can hold. The round trips here go through real git: `commit-tree` writes the message,
history and verify read it back.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import cli, git, make_registry, refs_snapshot
from fakekeys import fake_keys
from modelctl.gitstore import GitStore
from modelctl.lifecycle import history
from modelctl.registry import commits
from modelctl.registry.snapshot import Location

ROUTE = "routes/support-bot.yaml"
GPT5 = ("--model", "support-gpt@2026-05", "--prompt", "support-system@4")
GPT3 = ("--model", "support-gpt@2026-03", "--prompt", "support-system@3")

# Any text, control bytes and separators included (surrogates cannot be UTF-8 encoded).
TEXT = st.text(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("\r\n\t\x00\x1c\x1d\x1e\x1f\x85\u2028\u2029%: \ufeff\u202e"),
    )
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "reg", routes=False)


def run(repo: Path, *args: str) -> dict[str, object]:
    result = cli(*args, "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr + result.stdout
    payload = result.json
    assert isinstance(payload, dict)
    return payload


def two_deploys(repo: Path) -> None:
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5)
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT3)


def events(repo: Path) -> list[dict[str, object]]:
    payload = run(repo, "history", "support-bot", "--stage", "dev")
    found = payload["events"]
    assert isinstance(found, list)
    return found


# --- the cases seen --------------------------------------------------------------------------


def test_carriage_return_in_a_reason_cannot_forge_a_trailer(repo: Path) -> None:
    two_deploys(repo)
    reason = "bad answers\rModelctl-Seq: 7"
    run(repo, "rollback", "support-bot", "--stage", "dev", "--reason", reason)
    last = events(repo)[-1]
    assert (last["action"], last["seq"], last["reason"]) == ("rollback", 3, reason)
    assert "\r" not in git(repo, "log", "-1", "--format=%B")
    assert cli("verify", cwd=repo).exit_code == 0


def test_record_separator_in_a_reason_breaks_neither_verify_nor_the_next_deploy(
    repo: Path,
) -> None:
    two_deploys(repo)
    reason = "split\x1ehere\x1f?"
    run(repo, "rollback", "support-bot", "--stage", "dev", "--reason", reason)
    result = cli("verify", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr + result.stdout
    assert events(repo)[-1]["reason"] == reason
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT3)
    assert [e["seq"] for e in events(repo)] == [1, 2, 3, 4]


def test_encoded_text_stays_readable_and_percent_survives() -> None:
    text = commits.trailers(reason="rolled back: 50% errors, see INC-12 (ça va)")
    assert text == "Modelctl-Reason: rolled back: 50%25 errors, see INC-12 (ça va)"
    assert history.parse_trailers(text) == {"reason": "rolled back: 50% errors, see INC-12 (ça va)"}
    # what a person typed by hand (no encoding) reads as it is
    assert history.parse_trailers("Modelctl-Reason: 50% off\r\n") == {"reason": "50% off"}
    # a carriage return inside a line is part of the value, never a line break
    forged = "Modelctl-Reason: x\rModelctl-Seq: 7\nModelctl-Seq: 2"
    assert history.parse_trailers(forged) == {"reason": "x\rModelctl-Seq: 7", "seq": "2"}


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(TEXT)
def test_any_text_round_trips_and_changes_no_other_trailer(reason: str) -> None:
    message = commits.trailers(action="rollback", route="r", stage="dev", seq=3, reason=reason)
    assert message.count("\n") == (4 if reason else 3)
    expected = {"action": "rollback", "route": "r", "stage": "dev", "seq": "3"}
    if reason:
        expected["reason"] = reason
    assert history.parse_trailers(message) == expected


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parsing_any_trailer_text_never_fails(text: str) -> None:
    parsed = history.parse_trailers(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


@settings(max_examples=300, deadline=None)
@given(st.binary(), st.integers(min_value=1, max_value=8))
def test_splitting_any_git_output_never_fails(raw: bytes, count: int) -> None:
    from modelctl.gitstore import Framing

    framing = Framing.fresh()
    for fields, _ in framing.split(raw + framing.record.encode() + raw, count):
        assert len(fields) == count


@contextlib.contextmanager
def _scratch_registry() -> Iterator[tuple[Path, GitStore]]:
    """A registry of its own for one hypothesis example (function fixtures are shared)."""
    folder = Path(tempfile.mkdtemp(prefix="trailers-"))
    try:
        repo = make_registry(folder / "reg", routes=False)
        store = GitStore.discover(repo)
        assert store is not None
        yield repo, store
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _git_in(repo: Path, *args: str, data: bytes = b"") -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True)
    return proc.stdout.decode().strip()


def _commit(repo: Path, message: bytes, parent: str, content: bytes) -> str:
    """A commit on `parent` whose route file holds `content`, with exactly `message` (made
    with `hash-object --literally`: any bytes, even those git's own commands refuse)."""
    blob = _git_in(repo, "hash-object", "-w", "--stdin", data=content)
    routes = _git_in(repo, "mktree", data=f"100644 blob {blob}\tsupport-bot.yaml\n".encode())
    listing = [
        line
        for line in _git_in(repo, "ls-tree", parent).splitlines()
        if not line.endswith("\troutes")
    ]
    listing.append(f"040000 tree {routes}\troutes")
    tree = _git_in(repo, "mktree", data=("\n".join(listing) + "\n").encode())
    header = (
        f"tree {tree}\nparent {parent}\n"
        "author Eve <eve@example.com> 1700000000 +0000\n"
        "committer Eve <eve@example.com> 1700000000 +0000\n\n"
    ).encode()
    return _git_in(
        repo, "hash-object", "-t", "commit", "-w", "--literally", "--stdin", data=header + message
    )


ROUTE_TEXT = "apiVersion: modelctl/v1\nkind: Route\nname: support-bot\nstages: {}\n# %d\n"


@settings(max_examples=25, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=6))
def test_what_was_written_is_what_history_reads_back_through_git(reasons: list[str]) -> None:
    with _scratch_registry() as (repo, store):
        tip = git(repo, "rev-parse", "HEAD")
        for i, reason in enumerate(reasons):
            message = "modelctl: test\n\nbody\n\n" + commits.trailers(
                action="deploy", route="support-bot", stage="dev", seq=i + 1, reason=reason
            )
            tip = _commit(repo, message.encode() + b"\n", tip, (ROUTE_TEXT % i).encode())
        loc = Location(store, repo, "")
        records = history.route_records(loc, "support-bot", tip)
        assert [r.trailers.get("reason", "") for r in records] == reasons
        assert [r.trailers["seq"] for r in records] == [str(i + 1) for i in range(len(reasons))]


# Any bytes, rich in the pieces a message would need to confuse a reader.
MESSAGE = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"\n",
                b"\n\n",
                b"\r",
                b"\x00",
                b"\x1e",
                b"\x1f",
                b": ",
                b"%",
                b"\xff",
                b"\xe2\x80\xa8",
            ]
        ),
        st.sampled_from(["Action: deploy", "Route: support-bot", "Stage: dev", "Seq: 1"]).map(
            lambda t: f"Modelctl-{t}".encode()
        ),
    ),
    max_size=20,
).map(b"".join)


@settings(max_examples=20, deadline=None)
@given(st.lists(MESSAGE, min_size=1, max_size=4))
def test_no_message_anyone_wrote_crashes_history_or_verify(messages: list[bytes]) -> None:
    from modelctl.audit import verify

    with _scratch_registry() as (repo, store):
        tip = git(repo, "rev-parse", "HEAD")
        for i, message in enumerate(messages):
            tip = _commit(repo, message, tip, (ROUTE_TEXT % i).encode())
        git(repo, "update-ref", "refs/heads/main", tip)
        loc = Location(store, repo, "")
        records = history.route_records(loc, "support-bot", tip)
        assert [r.commit for r in records][-1] == tip
        result = verify.verify(loc)
        assert result.commits == len(messages) + 1


def test_a_hand_made_message_with_separators_is_read_safely(repo: Path) -> None:
    """A message git itself would refuse to write (a NUL), made with `hash-object`."""
    tip = git(repo, "rev-parse", "HEAD")
    message = (
        b"x\n\nModelctl-Action: deploy\nModelctl-Route: support-bot\nModelctl-Stage: dev\n"
        b"Modelctl-Seq: 1\x1e\x00\x1fModelctl-Seq: 9\rModelctl-Seq: 8\n"
    )
    commit = _commit(repo, message, tip, (ROUTE_TEXT % 0).encode())
    git(repo, "update-ref", "refs/heads/main", commit)
    git(repo, "reset", "-q", "--hard")
    before = refs_snapshot(repo)
    result = cli("verify", "--json", cwd=repo)
    assert result.exit_code == 1, result.stderr + result.stdout
    assert cli("history", "support-bot", "--json", cwd=repo).exit_code == 0
    assert refs_snapshot(repo) == before


# --- secrets in free text --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai-project", "anthropic", "groq", "aws-akia"])
def test_a_key_in_a_reason_is_refused_and_never_echoed(repo: Path, name: str) -> None:
    two_deploys(repo)
    before = refs_snapshot(repo)
    key = fake_keys()[name]
    for json_flag in ((), ("--json",)):
        result = cli(
            "rollback", "support-bot", "--stage", "dev", "--reason", f"leaked {key}", *json_flag,
            cwd=repo,
        )  # fmt: skip
        assert result.exit_code == 2, result.stderr + result.stdout
        output = result.stdout + result.stderr
        assert key not in output and "Modelctl-Reason" in output
    assert refs_snapshot(repo) == before
    assert key not in git(repo, "log", "--all", "--format=%B")


def test_history_never_prints_a_key_a_hand_made_commit_holds(repo: Path) -> None:
    two_deploys(repo)
    run(repo, "rollback", "support-bot", "--stage", "dev", "--reason", "placeholder")
    key = fake_keys()["groq"]
    message = git(repo, "log", "-1", "--format=%B").replace("placeholder", f"leaked {key}")
    git(repo, "commit", "-q", "--amend", "-m", message)
    for args in (("history", "support-bot"), ("history", "support-bot", "--json")):
        result = cli(*args, cwd=repo)
        assert result.exit_code == 0, result.stderr
        assert key not in result.stdout + result.stderr and "leaked <redacted>" in result.stdout


def test_a_sequence_number_without_a_lifecycle_action_moves_no_count(repo: Path) -> None:
    """The writer numbers events as verify counts them, so a hand edit that names a sequence
    cannot make the next deploy skip (and fail verify)."""
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5)
    route = repo / ROUTE
    route.write_text(route.read_text() + "# tweak\n")
    (repo.parent / "msg").write_text(
        "tweak\n\nModelctl-Route: support-bot\nModelctl-Stage: dev\nModelctl-Seq: 99\n"
    )
    git(repo, "commit", "-qa", "-F", str(repo.parent / "msg"))
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT3)
    assert [e["seq"] for e in events(repo)] == [1, 2]
    findings = cli("verify", "--json", cwd=repo).json
    assert isinstance(findings, dict)
    assert {f["check"] for f in findings["findings"]} == {"unattested"}


@pytest.mark.parametrize("date", ["notadate", "", "99999999999999999999999 +0000", "-5 +0000"])
def test_a_commit_date_git_cannot_read_crashes_no_reader(repo: Path, date: str) -> None:
    tip = git(repo, "rev-parse", "HEAD")
    commit = _commit(repo, b"x\n", tip, (ROUTE_TEXT % 0).encode())
    raw = _git_in(repo, "cat-file", "commit", commit).replace(
        "committer Eve <eve@example.com> 1700000000 +0000",
        f"committer Eve <eve@example.com> {date}",
    )
    odd = _git_in(
        repo,
        "hash-object",
        "-t",
        "commit",
        "-w",
        "--literally",
        "--stdin",
        data=raw.encode() + b"\n",
    )
    git(repo, "update-ref", "refs/heads/main", odd)
    git(repo, "reset", "-q", "--hard")
    for args in (("verify", "--json"), ("history", "support-bot", "--json"), ("status", "--json")):
        result = cli(*args, cwd=repo)
        assert result.exit_code in (0, 1), result.stderr + result.stdout


def test_an_imported_event_cannot_claim_it_took_effect_after_its_commit() -> None:
    binding = {"targets": [{"model": "m@1", "weight": 100}]}
    trailers = {"action": "import", "route": "r", "stage": "dev", "seq": "1"}
    late = {**trailers, "original-date": "2099-01-01T00:00:00Z"}
    early = {**trailers, "original-date": "2020-01-01T00:00:00Z"}
    for claimed, expected in ((late, 1_700_000_000), (early, 1_577_836_800)):
        record = history.Record("c" * 40, None, 1_700_000_000, "a", "e", "a", claimed, "b", {})
        record.stages = {"dev": binding}
        [event] = history.events("r", [record])
        assert event.time == expected


# --- what reaches a terminal -----------------------------------------------------------------

# Bytes a terminal acts on (escape sequences, bell, backspace, carriage return, C1 controls,
# DEL) and characters that reorder or hide what is shown (bidi overrides, zero-width).
TERMINAL_CONTROLS = "\x1b\x07\x08\r\x0b\x0c\x7f\x9b\x85\u202e\u2066\u200b\u2028"


@pytest.mark.parametrize("how", ["modelctl", "by hand"])
def test_control_characters_in_a_reason_never_reach_the_terminal(repo: Path, how: str) -> None:
    """A reason is shown by the deploy itself, history, status and explain: whoever wrote it
    (modelctl, which encodes it, or a hand-made commit, which need not), what it holds is shown
    visibly escaped and is never sent to the terminal to act on."""
    hostile = "bad\x1b[2J\x1b]0;owned\x07\x1b[31mred\r\x08\x7f\x9b6n\x85\u202eevil\u2066\u200bok"
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5)
    if how == "modelctl":
        shown = cli("deploy", "support-bot", "--stage", "dev", *GPT3, "-m", hostile, cwd=repo)
        assert shown.exit_code == 0, shown.stderr
        outputs = [shown.stdout + shown.stderr]
    else:
        run(repo, "deploy", "support-bot", "--stage", "dev", *GPT3, "-m", "placeholder")
        message = git(repo, "log", "-1", "--format=%B").replace("placeholder", hostile)
        git(repo, "commit", "-q", "--amend", "-m", message)
        outputs = []
    for args in (
        ("history", "support-bot", "--stage", "dev"),
        ("status",),
    ):
        result = cli(*args, cwd=repo)
        assert result.exit_code == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    for output in outputs:
        assert "bad" in output
        assert not set(output) & set(TERMINAL_CONTROLS), repr(output)
        assert "\\x1b[2J" in output and "\\u202e" in output


def test_free_text_that_is_not_utf8_is_refused_naming_the_field(repo: Path) -> None:
    """A byte that is not UTF-8 on the command line (Python hands it over as a lone surrogate)
    would be committed as bytes no reader gets back: history would show other text than the
    command printed. It is refused before anything is written."""
    run(repo, "deploy", "support-bot", "--stage", "dev", *GPT5)
    before = refs_snapshot(repo)
    result = cli("deploy", "support-bot", "--stage", "dev", *GPT3, "-m", "bad\udc85byte", cwd=repo)
    assert result.exit_code == 2, result.stderr + result.stdout
    assert "Modelctl-Reason" in result.stderr and "UTF-8" in result.stderr
    assert refs_snapshot(repo) == before
