"""The run page's summary of a checkpoint (tracker.ui.run_view.checkpoint_preview): what a torch.save file holds,
loaded with weights_only, and a one-line note for a file that does not load that way, whose code never runs."""
import io
import pickle

import torch

from tracker.ui import run_view
from tracker.ui.run_view import checkpoint_preview


def saved(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def test_a_checkpoint_shows_its_keys_state_dicts_scalars_and_first_tensors(monkeypatch):
    monkeypatch.setattr(run_view, "CHECKPOINT_TENSORS", 12)  # of the 16 tensors below
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 7, "epoch": 1,
                  "best_score": 0.5, "torch_rng": torch.get_rng_state()}

    preview = checkpoint_preview("checkpoint.pt", saved(checkpoint))

    assert preview["kind"] == "checkpoint"
    assert preview["key_names"] == ["model", "optimizer", "step", "epoch", "best_score", "torch_rng"]
    assert preview["scalars"] == [("step", 7), ("epoch", 1), ("best_score", 0.5)]
    model_tensors = list(model.state_dict().values())  # weights, biases and BatchNorm's buffers
    momentum = [state["momentum_buffer"] for state in optimizer.state_dict()["state"].values()]
    rng = torch.get_rng_state()
    assert preview["groups"] == [
        ("model", len(model_tensors), sum(t.numel() for t in model_tensors),
         sum(t.numel() * t.element_size() for t in model_tensors)),
        ("optimizer", len(momentum), sum(t.numel() for t in momentum), 4 * sum(t.numel() for t in momentum)),
        ("(top level)", 1, rng.numel(), rng.numel())]
    assert preview["tensors"][:3] == [("model.0.weight", (4, 3), "float32"), ("model.0.bias", (4,), "float32"),
                                      ("model.1.weight", (4,), "float32")]
    assert ("model.1.num_batches_tracked", (), "int64") in preview["tensors"]
    assert ("optimizer.state.0.momentum_buffer", (4, 3), "float32") in preview["tensors"]
    assert len(preview["tensors"]) == 12 and preview["more"] == len(model_tensors) + len(momentum) + 1 - 12


def test_a_models_state_dict_is_one_group_without_a_key_list():
    weights = torch.nn.Linear(3, 2).state_dict()
    preview = checkpoint_preview("model_best.pt", saved(weights))
    assert preview["key_names"] == [] and preview["scalars"] == []
    assert preview["groups"] == [("(top level)", 2, 8, 32)]
    assert preview["tensors"] == [("weight", (2, 3), "float32"), ("bias", (2,), "float32")]
    assert preview["more"] == 0


class Payload:
    """A pickle that would call os.system when unpickled without weights_only."""

    def __reduce__(self):
        import os

        return os.system, ("touch payload-ran",)


def test_garbage_and_code_are_a_one_line_note_and_the_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for data in (b"half a checkpoint", pickle.dumps(Payload()), saved({"step": 1})[:40]):
        preview = checkpoint_preview("checkpoint.pt", data)
        assert preview["kind"] == "file"
        assert preview["note"].startswith("checkpoint.pt is corrupted or holds more than tensors and numbers (")
        assert "\n" not in preview["note"]
    assert not (tmp_path / "payload-ran").exists()


def test_a_checkpoint_over_the_limit_is_a_note_not_a_load(monkeypatch):
    monkeypatch.setattr(run_view, "CHECKPOINT_PREVIEW_BYTES", 100)
    preview = checkpoint_preview("checkpoint.pt", saved({"weights": torch.zeros(100)}))
    assert preview["kind"] == "file" and "download it" in preview["note"]
