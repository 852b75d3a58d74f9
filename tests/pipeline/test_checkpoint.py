import pytest
import torch
from accelerate import Accelerator

from pipeline.checkpoint import Checkpointer, atomic_directory


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "final"

    def write(content):
        def _write(d):
            d.mkdir()
            (d / "weights").write_text(content)
        return _write

    atomic_directory(target, write("v1"))
    assert (target / "weights").read_text() == "v1"

    def crash(d):
        d.mkdir()
        (d / "weights").write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_directory(target, crash)
    assert (target / "weights").read_text() == "v1"  # the old version survives a failed write
    atomic_directory(target, write("v2"))
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no temp directory left behind


def test_checkpointer_restores_model_optimizer_and_keeps_the_newest(tmp_path):
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    ckpt = Checkpointer(tmp_path, acc, keep=2)
    assert ckpt.restore_latest() is None
    for step in (1, 2, 3):
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
        ckpt.save(step, {"train_seconds": float(step)})
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    assert [s for s, _ in ckpt.checkpoints()] == [2, 3]
    (tmp_path / "ckpt-0000009").mkdir()  # a directory without its state file is not a checkpoint
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    state = ckpt.restore_latest()
    assert state == {"step": 3, "identity": "", "train_seconds": 3.0}
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert opt.state_dict()["state"][0]["step"] == 3
