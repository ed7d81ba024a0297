"""benchmarks.gpu_study: the archive's parts, the transfer plan, and a session resumed from an
earlier one's results, run on the CPU with generated data."""

import json
import shutil
import tarfile

import pytest

from benchmarks import gpu_study
from tests.fake_data import write_cifar_dataset, write_idx_dataset


def test_parts_join_back_to_the_same_bytes_and_name_what_is_wrong(tmp_path):
    source = tmp_path / "archive.bin"
    source.write_bytes(bytes(range(256)) * 40)  # 10240 bytes: three parts of 4096 at most
    staged = tmp_path / "staged"
    parts = gpu_study.split_file(source, staged, 4096)
    assert [p.stat().st_size for p in parts] == [4096, 4096, 2048]
    assert gpu_study.join_parts(staged) == [staged / "archive.bin"]
    assert (staged / "archive.bin").read_bytes() == source.read_bytes()
    assert gpu_study.join_parts(staged) == []  # already whole and right: left alone

    (staged / "archive.bin").write_bytes(b"stale")
    parts[1].unlink()
    with pytest.raises(SystemExit, match=r"parts archive.bin.part-01 are not in"):
        gpu_study.join_parts(staged)
    parts[1].write_bytes(b"x" * 4096)
    with pytest.raises(SystemExit, match=r"part-01 is damaged"):
        gpu_study.join_parts(staged)


def test_the_plan_completes_the_first_items_in_the_first_transfers(tmp_path):
    sizes = {"wheels": 30, "part-0": 60, "part-1": 60, "part-2": 25, "small": 10, "last": 40}
    items = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"\0" * size)
        items.append(tmp_path / name)
    plan = gpu_study.transfer_plan(items, room_bytes=70)
    names = [[p.name for p in group] for group in plan]
    assert names == [["wheels", "part-2", "small"], ["part-0"], ["part-1"], ["last"]]
    assert gpu_study.transfer_plan(items, room_bytes=70, max_paths=2)[0] == items[0:4:3]
    with pytest.raises(SystemExit, match="does not fit in one transfer"):
        gpu_study.transfer_plan(items, room_bytes=50)


def test_pairs_run_cifar10_first_and_cheap_models_first():
    order = gpu_study.pair_order(["googlenet", "lenet5"], ["mnist", "cifar10"], [0, 1])
    assert order[:3] == [
        ("lenet5", "cifar10", 0),
        ("googlenet", "cifar10", 0),
        ("lenet5", "mnist", 0),
    ]
    assert order[4] == ("lenet5", "cifar10", 1)
    history = [
        {"model": "lenet5", "status": "finished", "seconds": 10.0},
        {"model": "lenet5", "status": "finished", "seconds": 20.0},
        {"model": "lenet5", "status": "stopped at the budget", "seconds": 99.0},
    ]
    assert gpu_study.estimate_s(history, "lenet5") == 15.0
    assert gpu_study.estimate_s(history, "alexnet") is None


def test_a_session_trains_within_its_budget_and_the_next_resumes_it(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_cifar_dataset(data, num_per_batch=40, num_test=60)
    write_idx_dataset(data, "mnist", num_train=240, num_test=60)
    staged = tmp_path / "staged"
    archive = data / "cifar10" / "cifar-10-python.tar.gz"
    gpu_study.split_file(archive, staged / "data" / "cifar10", archive.stat().st_size // 2 + 1)
    shutil.copytree(data / "mnist", staged / "data" / "mnist")
    tiny = ["--config.train.num_epochs=1", "--config.train.max_train_examples=64"]
    tiny += ["--config.train.batch_size=32", "--config.train.compilation_cache_dir="]
    common = ["run", "--staged", str(staged), "--models", "lenet5", "--seeds", "0"]

    first, out = tmp_path / "first", tmp_path / "out1"
    argv = [*common, "--workdir", str(first), "--out", str(out), "--datasets", "cifar10"]
    assert gpu_study.main([*argv, "--budget-s", "400", "--", *tiny]) == 0
    assert (staged / "data" / "cifar10" / archive.name).read_bytes() == archive.read_bytes()
    (session_file,) = first.glob("sessions/*/session.json")
    session = json.loads(session_file.read_text())
    (record,) = session["pairs"]
    assert record["status"] == "finished" and record["seconds"] > 0
    assert "--config.models=lenet5 --config.datasets=cifar10 --config.seeds=0" in record["command"]
    assert session["report"]["rc"] == 0
    with tarfile.open(out / gpu_study.TARBALL) as packed:
        names = set(packed.getnames())
    assert {"first/seed_0/lenet5_cifar10_results.json", "first/report.md"} <= names
    assert "first/gpu_pairs.json" in names
    (summary,) = [n for n in names if n.startswith("first/sessions/") and n.endswith("README.md")]
    assert summary.replace("README.md", "logs/report.log") in names
    assert not [n for n in names if "_model" in n]  # checkpoints stay on the machine

    # The next session starts from the brought-back files only (no checkpoints) and has no
    # time left for the pair it has not trained: it neither retrains nor starts anything.
    brought_back = tmp_path / "brought_back"
    with tarfile.open(out / gpu_study.TARBALL) as packed:
        packed.extractall(brought_back, filter="data")
    second, out = tmp_path / "second", tmp_path / "out2"
    argv = [*common, "--workdir", str(second), "--out", str(out), "--datasets", "cifar10,mnist"]
    argv += ["--resume-from", str(brought_back / "first")]
    budget = str(gpu_study.REPORT_RESERVE_S + 0.5)
    assert gpu_study.main([*argv, "--budget-s", budget, "--", *tiny]) == 0
    (session_file,) = second.glob("sessions/*/session.json")
    session = json.loads(session_file.read_text())
    assert session["resumed_results"] == 1
    (skipped,) = session["pairs"]
    assert skipped["dataset"] == "mnist" and skipped["status"].startswith("not started: ")
    assert len(json.loads((second / gpu_study.PAIRS_FILE).read_text())) == 1
    assert "lenet5" in (second / "report.md").read_text()
