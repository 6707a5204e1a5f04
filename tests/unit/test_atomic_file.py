"""A file replaced whole survives a power cut: its data is on disk before the rename, and the rename after it."""
import os

from runstore.atomic_file import write_atomically


def test_the_new_file_is_synced_before_the_rename_and_its_folder_after(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("old")
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(descriptor):
        synced = os.readlink(f"/proc/self/fd/{descriptor}")
        events.append(("fsync", synced, open(synced, "rb").read() if os.path.isfile(synced) else "folder"))
        fsync(descriptor)

    def recording_replace(source, target):
        events.append(("replace", str(source), str(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    write_atomically(path, "new")

    assert path.read_text() == "new"
    partial = events[1][1]
    assert events == [("fsync", partial, b"new"), ("replace", partial, str(path)),
                      ("fsync", str(tmp_path), "folder")]
