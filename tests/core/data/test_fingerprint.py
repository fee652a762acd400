"""Source fingerprints: a resume can tell a changed or vanished source from an unchanged one."""

from __future__ import annotations

from spark_tui.core.data.fingerprint import changes, fingerprint


def test_file_fingerprint_sees_changes_and_a_missing_file(tmp_path):
    src = tmp_path / "mine.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n')
    rec = fingerprint(str(src))
    assert rec["kind"] == "file" and rec["bytes"] == src.stat().st_size and len(rec["sha256"]) == 64
    assert changes(rec, "data") == []
    src.write_text('{"instruction": "a", "output": "c"}\n')  # same size, other bytes
    assert "changed since the run started" in changes(rec, "data")[0]
    src.unlink()
    assert "is gone" in changes(rec, "data")[0]


def test_folder_bundled_and_hub_sources(tmp_path):
    folder = tmp_path / "saved"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "data.arrow").write_bytes(b"x" * 10)
    rec = fingerprint(str(folder))
    assert rec["kind"] == "folder" and rec["bytes"] == 10
    (folder / "train" / "extra.arrow").write_bytes(b"y")
    assert changes(rec, "validation")[0].startswith("the validation source")
    assert fingerprint("default", "sft")["kind"] == "file"  # the bundled sample set
    assert fingerprint("owner/dataset") == {"source": "owner/dataset", "kind": "hub"}
    assert changes(fingerprint("owner/dataset"), "data") == []  # known by name only
    assert fingerprint("") is None
