from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from modelctl.errors import ManifestError
from modelctl.registry import yamlio

BILLION_LAUGHS = (
    "a: &a ["
    + ",".join(["x"] * 9)
    + "]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
)


def problem(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    with pytest.raises(ManifestError) as info:
        yamlio.load(data, "m.yaml")
    assert len(info.value.problems) == 1
    found = info.value.problems[0]
    assert found.path == "m.yaml"
    return f"{found.line}:{found.message}"


def test_python_tags_never_run(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    doc = f"a: !!python/object/apply:os.system ['touch {sentinel}']\n"
    assert "explicit tag" in problem(doc)
    assert not sentinel.exists()


def test_custom_tags_refused() -> None:
    assert "explicit tag !model" in problem("a: !model x\n")
    assert "explicit tag" in problem("a: !!binary aGVsbG8=\n")
    assert "explicit tag" in problem("a: !!set {x}\n")


def test_billion_laughs_refused_fast_and_small() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    message = problem(BILLION_LAUGHS)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "anchor &a is not allowed" in message
    assert elapsed < 1.0 and peak < 8 * 1024 * 1024


def test_aliases_refused_with_line() -> None:
    assert problem("a: 1\nb: *x\n").startswith("2:")


def test_deep_nesting_refused_in_a_subprocess(tmp_path: Path) -> None:
    # The C loader segfaults on deep nesting; the event pre-scan must refuse it cleanly.
    code = (
        "from modelctl.registry import yamlio\n"
        "from modelctl.errors import ManifestError\n"
        "try:\n"
        "    yamlio.load(b'[' * 100000, 'deep.yaml')\n"
        "except ManifestError as e:\n"
        "    print(e.problems[0].message)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "nesting" in proc.stdout


@pytest.mark.parametrize("doc", ["a: 1\na: 2\n", "a:\n  b: 1\n  c: 2\n  b: 3\n"])
def test_duplicate_keys_refused_with_line(doc: str) -> None:
    message = problem(doc)
    assert "duplicate key" in message
    assert message.startswith(("2:", "4:"))
    assert "first at line" in message


def test_scalars_stay_exact_strings() -> None:
    doc = yamlio.load(
        b"version: 1.10\nsha: 0123456\nstage: no\ndate: 2024-01-01\nt: 1:30\nn: 1_000\n"
        b"x: .nan\nflag: true\nnothing: null\nempty:\nquoted: 'true'\n",
        "m.yaml",
    )
    assert doc.data == {
        "version": "1.10",
        "sha": "0123456",
        "stage": "no",
        "date": "2024-01-01",
        "t": "1:30",
        "n": "1_000",
        "x": ".nan",
        "flag": True,
        "nothing": None,
        "empty": None,
        "quoted": "true",
    }
    assert doc.line_of(("stage",)) == 3
    assert yamlio.resolve_plain(yamlio.load(b"a: 0.2\nb: 7\nc: 1.10\nd: x\n", "p").data) == {
        "a": 0.2,
        "b": 7,
        "c": 1.1,
        "d": "x",
    }


def test_oversized_refused_before_parsing() -> None:
    big = b"a: " + b"x" * (yamlio.MAX_BYTES) + b"\n"
    start = time.perf_counter()
    assert "limit for a manifest" in problem(big)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a: \xff\n", "invalid UTF-8"),
        (b"\xff\xfea\x00:\x00", "UTF-16"),
        (b"a: x\x00y\n", "U+0000"),
        ("a: x\x85y\n".encode(), "U+0085"),
        ("name: a\u202eb\n".encode(), "U+202E"),
        ("# comment \u2066 hidden\na: 1\n".encode(), "U+2066"),
    ],
)
def test_bad_bytes_and_characters_refused(raw: bytes, expected: str) -> None:
    assert expected in problem(raw)


def test_utf8_bom_is_fine() -> None:
    assert yamlio.load("\ufeffa: b\n".encode(), "m.yaml").data == {"a": "b"}


def test_several_documents_refused() -> None:
    assert "several YAML documents" in problem("a: 1\n---\nb: 2\n")


def test_complex_keys_refused() -> None:
    assert "mapping keys must be plain strings" in problem("? [a, b]\n: 1\n")


def test_syntax_error_names_line() -> None:
    assert problem("a: [1, 2\nb: 3\n").startswith(("2:", "3:"))


def test_load_mapping_requires_mapping() -> None:
    with pytest.raises(ManifestError, match="expected a mapping"):
        yamlio.load_mapping(b"- a\n- b\n", "m.yaml")
    with pytest.raises(ManifestError, match="empty"):
        yamlio.load_mapping(b"", "m.yaml")


def test_hostile_corpus_stays_under_64_mib() -> None:
    corpus = [
        BILLION_LAUGHS.encode(),
        b"[" * 200_000,
        b"{" * 200_000,
        b"- " * 100_000,
        b"a: " + b"x" * (yamlio.MAX_BYTES - 10),
        b"\n".join(b"k%d: v" % i for i in range(60_000)),
        b"a: &x 1\n",
        b"[" + b"1," * 300_000 + b"]",
    ]
    tracemalloc.start()
    for raw in corpus:
        with contextlib.suppress(ManifestError):
            yamlio.load(raw, "m.yaml")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_dump_round_trips_strings_that_look_like_numbers() -> None:
    data = {"version": "1.10", "flag": "true", "n": "0123", "x": None, "y": 0.2}
    assert yamlio.load(yamlio.dump(data).encode(), "m").data == {
        "version": "1.10",
        "flag": "true",
        "n": "0123",
        "x": None,
        "y": "0.2",
    }


@pytest.mark.parametrize(
    "template",
    [
        "{k}: 1\n{k}: 2\n",  # duplicate key, top level
        "a:\n  {k}: 1\n  {k}: 2\n",  # duplicate key, nested
        "a: &{k} 1\n",  # anchor
        "a: *{k}\n",  # alias
        "a: !{k} 1\n",  # explicit tag
        "a: !!{k} 1\n",
    ],
)
@pytest.mark.parametrize("name", ["aws-akia", "groq", "openai-project"])
def test_loader_errors_never_quote_a_credential(template: str, name: str) -> None:
    from fakekeys import fake_keys

    key = fake_keys()[name]
    message = problem(template.format(k=key))
    assert key not in message and "<redacted>" in message
