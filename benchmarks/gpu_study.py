"""The comparison study (`configs/compare.py`) on a borrowed GPU machine, a few minutes at a time.

The study's 21 pairs take longer than one short GPU session, and the machine has no network,
holds nothing between sessions and takes at most a fixed number of MiB per transfer. So:

    # 1. here, once: wheels, datasets, CIFAR-10's archive cut into parts that fit a transfer
    #    beside the repository; prints which files go in which transfer (transfers.json)
    python -m benchmarks.gpu_study prepare --data-dir ../shared/datasets --out runs/gpu_study
    # 2. copy what the printed plan lists to the GPU machine (one group per transfer), then there
    python -m benchmarks.gpu_study run --staged runs/gpu_study --workdir runs/compare_gpu \
        --resume-from docs/results/compare_gpu --budget-s 480 --out OUT
    # 3. here: tar xzf gpu_study.tar.gz -C docs/results (its folder is the workdir's name)

`run` joins and checks the archive's parts (SHA-256), installs the wheels where a module is
missing (`benchmarks.gpu_check`'s list), records the machine, copies the pairs finished in
earlier sessions from `--resume-from`, and trains the rest one pair per `scripts.compare`
process: seed 0 first, CIFAR-10 first (the most informative), then Fashion-MNIST and MNIST,
the models in order of their CPU epoch time (a proxy for their cost on a GPU, so that the
most pairs finish). A pair starts only if the time it took before (same model, any dataset,
from `gpu_pairs.json`, which travels with the results) fits in the budget left; one stopped
at the budget keeps its checkpoints in `--workdir` and resumes in the next call while the
machine stays up. Each pair's command, wall time and outcome go to `gpu_pairs.json`, the
session's logs, machine description and summary to `sessions/{time}/`; the report is rebuilt
over every finished pair, and `OUT/gpu_study.tar.gz` (rewritten after each pair) holds the
workdir without its checkpoints.

Arguments after `--` go to every `scripts.compare` call: a dry run on a CPU is
`... run ... -- --config.train.num_epochs=1 --config.train.max_train_examples=256`.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from benchmarks import gpu_check

REPO = gpu_check.REPO
# Cheapest first by the measured CPU epoch time on CIFAR-10 (docs/performance.md).
MODEL_ORDER = ("lenet5", "alexnet", "vgg16_bn", "xception", "resnet18", "senet18", "googlenet")
DATASET_ORDER = ("cifar10", "fashion_mnist", "mnist")
PAIRS_FILE = "gpu_pairs.json"
TARBALL = "gpu_study.tar.gz"
TRANSFER_MIB = 64
TRANSFER_PATHS = 8  # paths one transfer may name
REPORT_RESERVE_S = 60.0  # rebuilding the report and packing, kept out of the training budget
MIB = 1 << 20


def sha256(path: Path) -> str:
    # Not trainers.download's: that module needs pooch and requests, which arrive as wheels.
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def split_file(source: Path, dest: Path, part_bytes: int) -> list[Path]:
    """Cuts `source` into `dest/NAME.part-00`, ... and writes `dest/NAME.parts.json`, which
    names each part with its size and hash and the whole file's, for `join_parts`."""
    dest.mkdir(parents=True, exist_ok=True)
    parts, entries = [], []
    with source.open("rb") as handle:
        while chunk := handle.read(part_bytes):
            part = dest / f"{source.name}.part-{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append(part)
            entries.append({"file": part.name, "size": len(chunk), "sha256": sha256(part)})
    manifest = {"name": source.name, "size": source.stat().st_size, "sha256": sha256(source)}
    manifest["parts"] = entries
    (dest / f"{source.name}.parts.json").write_text(json.dumps(manifest, indent=2))
    return parts


def join_parts(directory: Path) -> list[Path]:
    """Rebuilds every file cut by `split_file` under `directory` whose whole copy is missing or
    wrong; returns the files rebuilt. Raises SystemExit naming what is missing or damaged."""
    rebuilt = []
    for manifest_path in sorted(directory.rglob("*.parts.json")):
        manifest = json.loads(manifest_path.read_text())
        whole = manifest_path.with_name(manifest["name"])
        size_ok = whole.is_file() and whole.stat().st_size == manifest["size"]
        if size_ok and sha256(whole) == manifest["sha256"]:
            continue
        parts = [manifest_path.with_name(entry["file"]) for entry in manifest["parts"]]
        missing = [part.name for part in parts if not part.is_file()]
        if missing:
            raise SystemExit(
                f"{whole.name}: parts {', '.join(missing)} are not in {manifest_path.parent}; "
                "copy them there (see the transfer plan of `gpu_study prepare`)."
            )
        for part, entry in zip(parts, manifest["parts"], strict=True):
            if part.stat().st_size != entry["size"] or sha256(part) != entry["sha256"]:
                raise SystemExit(f"{part} is damaged (size or SHA-256 differs); copy it again.")
        partial = whole.with_name(whole.name + ".partial")
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, MIB)
        if sha256(partial) != manifest["sha256"]:
            raise SystemExit(
                f"{whole} joined from its parts has the wrong SHA-256; copy them again."
            )
        partial.replace(whole)
        rebuilt.append(whole)
    return rebuilt


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the files a transfer of the repository takes: tracked and untracked, not
    ignored (what the GPU machine's copy of the working tree holds)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    paths = {repo / name for name in listed.decode().split("\0") if name}
    return sum(path.stat().st_size for path in paths if path.is_file())


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def transfer_plan(items: list[Path], room_bytes: int, max_paths: int = TRANSFER_PATHS) -> list:
    """Groups `items`, given in priority order, into transfers of at most `room_bytes` and
    `max_paths` paths: each item goes into the first transfer it fits, so the first transfers
    complete the first items. An item larger than the room is an error."""
    groups: list[list[Path]] = []
    used: list[int] = []
    for item in items:
        size = _size(item)
        if size > room_bytes:
            raise SystemExit(f"{item} ({size / MIB:.1f} MiB) does not fit in one transfer.")
        for index, group in enumerate(groups):
            if used[index] + size <= room_bytes and len(group) < max_paths:
                group.append(item)
                used[index] += size
                break
        else:
            groups.append([item])
            used.append(size)
    return groups


def prepare(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data_dir = Path(args.data_dir).expanduser()
    wheels = out / "wheels"
    if not (wheels / "requirements.txt").is_file():
        status = gpu_check.prepare_wheels(str(wheels))
        if status:
            return status
    # A MiB of slack for files written in the repository meanwhile.
    room = TRANSFER_MIB * MIB - tree_bytes() - MIB
    part_bytes = args.part_mib * MIB if args.part_mib else room
    items = [wheels]
    for dataset in DATASET_ORDER:
        source = data_dir / dataset
        files = sorted(p for p in source.glob("*") if p.is_file() and p.suffix != ".md")
        if not files:
            raise SystemExit(f"No files in {source}; point --data-dir at the datasets' folder.")
        dest = out / "data" / dataset
        dest.mkdir(parents=True, exist_ok=True)
        for file in files:
            if file.stat().st_size > part_bytes:
                split_file(file, dest, part_bytes)
                items.append(dest / f"{file.name}.parts.json")
                items.extend(sorted(dest.glob(f"{file.name}.part-*")))
            else:
                shutil.copy2(file, dest / file.name)
                items.append(dest / file.name)
    plan = transfer_plan(items, room)
    relative = [[str(p.resolve().relative_to(REPO)) for p in group] for group in plan]
    (out / "transfers.json").write_text(json.dumps(relative, indent=2))
    print(
        f"{room / MIB:.1f} MiB of each transfer left beside the repository; {len(plan)} transfers:"
    )
    for index, group in enumerate(relative, 1):
        mib = sum(_size(REPO / p) for p in group) / MIB
        print(f"  {index}: {mib:.1f} MiB  {' '.join(group)}")
    print(f"Wrote {out / 'transfers.json'}.")
    return 0


def pair_order(models: list[str], datasets: list[str], seeds: list[int]) -> list[tuple]:
    """Seed by seed, dataset by dataset in DATASET_ORDER, models in MODEL_ORDER (unknown ones
    last, as given)."""

    def rank(order: tuple, name: str) -> int:
        return order.index(name) if name in order else len(order)

    models = sorted(models, key=lambda m: rank(MODEL_ORDER, m))
    datasets = sorted(datasets, key=lambda d: rank(DATASET_ORDER, d))
    return [(m, d, s) for s in seeds for d in datasets for m in models]


def estimate_s(history: list[dict], model: str) -> float | None:
    """Mean wall time of the finished pairs of `model`, any dataset; None before the first."""
    times = [r["seconds"] for r in history if r["model"] == model and r["status"] == "finished"]
    return sum(times) / len(times) if times else None


def in_repo(path: Path) -> Path:
    """`path` relative to the repository (where the commands run) when inside it: the
    recorded commands then hold no machine's own folders."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def results_path(workdir: Path, model: str, dataset: str, seed: int) -> Path:
    return workdir / f"seed_{seed}" / f"{model}_{dataset}_results.json"


def epochs_done(checkpoints: Path) -> int:
    """The latest epoch saved in a run's checkpoint folder (orbax names steps by number)."""
    steps = [int(p.name) for p in checkpoints.glob("*") if p.name.isdigit()]
    return max(steps, default=0)


def last_line(log: Path) -> str:
    """The log's last line before the exit status `Check.call` appends: the error, if any."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-2] if len(lines) >= 2 else "".join(lines)


def copy_finished(source: Path, workdir: Path) -> int:
    """Copies the seed folders' files from an earlier session (results, curves, their pairs
    record) into `workdir` where missing; returns how many results files came."""
    copied = 0
    for path in sorted(source.glob("seed_*/*")):
        if path.is_file():
            target = workdir / path.relative_to(source)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                copied += path.name.endswith("_results.json")
    history = source / PAIRS_FILE
    if history.is_file() and not (workdir / PAIRS_FILE).exists():
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(history, workdir / PAIRS_FILE)
    return copied


def pack(workdir: Path, tarball: Path) -> Path:
    """The workdir without checkpoints or locks, as `tarball`."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p.endswith("_model") for p in parts) or info.name.endswith(".lock"):
            return None
        return info

    partial = tarball.with_name(tarball.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        archive.add(workdir, arcname=workdir.name, filter=keep)
    partial.replace(tarball)
    return tarball


def summary_markdown(session: dict) -> str:
    lines = [
        "# GPU study session",
        "",
        f"Started {session['started']}, {session['seconds']:.0f} s of a "
        f"{session['budget_s']:.0f} s budget; machine: "
        f"{gpu_check.machine_line({'machine': session.get('machine', {})})}.",
        "",
        "| pair | status | wall s | test accuracy |",
        "|---|---|---:|---:|",
    ]
    for record in session["pairs"]:
        accuracy = record.get("test_accuracy")
        accuracy = f"{100 * accuracy:.2f} %" if accuracy is not None else ""
        pair = f"{record['model']} {record['dataset']} seed {record['seed']}"
        seconds = f"{record['seconds']:.0f}" if "seconds" in record else ""
        lines.append(f"| {pair} | {record['status']} | {seconds} | {accuracy} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, extra: list[str], argv: list[str]) -> int:
    start = time.monotonic()
    staged = Path(args.staged).resolve()
    workdir = Path(args.workdir).resolve()
    session_dir = workdir / "sessions" / time.strftime("%Y%m%d-%H%M%S")
    session_dir.mkdir(parents=True)
    tarball = Path(args.out).resolve() / TARBALL
    tarball.parent.mkdir(parents=True, exist_ok=True)
    check = gpu_check.Check(
        argparse.Namespace(out=str(session_dir), wheels=str(staged / "wheels")), []
    )
    session: dict = {
        "command": "python -m benchmarks.gpu_study " + " ".join(argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "budget_s": args.budget_s,
        "pairs": [],
    }
    if gpu_check.missing_modules():
        check.wheels()
        session["wheels"] = check.summary["phases"]["wheels"]
    check.machine()
    session["machine"] = check.summary["machine"]
    datasets = args.datasets.split(",")
    rebuilt = [path for d in datasets for path in join_parts(staged / "data" / d)]
    session["joined"] = [str(path.relative_to(staged)) for path in rebuilt]
    if args.resume_from:
        session["resumed_results"] = copy_finished(Path(args.resume_from), workdir)
    history_path = workdir / PAIRS_FILE
    history = json.loads(history_path.read_text()) if history_path.is_file() else []

    def save() -> None:
        session["seconds"] = time.monotonic() - start
        history_path.write_text(json.dumps(history, indent=2))
        (session_dir / "session.json").write_text(json.dumps(session, indent=2, default=str))
        (session_dir / "README.md").write_text(summary_markdown(session))
        pack(workdir, tarball)

    save()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = [sys.executable, "-m", "scripts.compare", "--config=configs/compare.py"]
    base += [f"--workdir={in_repo(workdir)}", f"--config.train.data_dir={in_repo(staged)}/data"]
    base += ["--config.train.data_source=files"]
    for model, dataset, seed in pair_order(args.models.split(","), datasets, seeds):
        record = {"model": model, "dataset": dataset, "seed": seed}
        if results_path(workdir, model, dataset, seed).is_file():
            continue
        left = args.budget_s - REPORT_RESERVE_S - (time.monotonic() - start)
        expected = estimate_s(history, model)
        if left < 1 or (expected is not None and expected > left):
            expected_text = f"{expected:.0f} s expected" if expected is not None else ""
            record["status"] = (
                f"not started: {expected_text or 'no time'}, {max(left, 0):.0f} s left"
            )
            session["pairs"].append(record)
            continue
        command = [*base, f"--config.models={model}", f"--config.datasets={dataset}"]
        command += [f"--config.seeds={seed}", *extra]
        log = session_dir / "logs" / f"{model}_{dataset}_seed{seed}.log"
        print(f"[{time.monotonic() - start:.0f} s] {model} {dataset} seed {seed}", flush=True)
        result = check.call(command, log, left)
        record |= {"command": " ".join(["python", *command[1:]]), "seconds": result["seconds"]}
        finished = results_path(workdir, model, dataset, seed)
        if result["rc"] == 0 and finished.is_file():
            results = json.loads(finished.read_text())
            record |= {"status": "finished", "test_accuracy": results.get("test_accuracy")}
            record["device"] = gpu_check.device_of(results.get("environment", {}))
        else:
            record["status"] = "stopped at the budget" if result["timed_out"] else "failed"
            record["epochs_done"] = epochs_done(
                workdir / f"seed_{seed}" / f"{model}_{dataset}_model"
            )
            record["last_line"] = last_line(log)
        history.append(record | {"session": session["started"]})
        session["pairs"].append(record)
        save()
    report = [*base, "--config.report_only=True", *extra]
    session["report"] = check.call(report, session_dir / "logs" / "report.log", REPORT_RESERVE_S)
    save()
    print(f"Wrote {session_dir / 'README.md'} and {tarball}")
    return 0


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stage = commands.add_parser("prepare", help="stage wheels and datasets for the transfers")
    stage.add_argument("--data-dir", required=True, help="{dir}/{dataset}/ publishers' files")
    stage.add_argument("--out", default="runs/gpu_study")
    stage.add_argument(
        "--part-mib", type=int, default=0, help="largest part of a file (0: what a transfer holds)"
    )
    train = commands.add_parser("run", help="train the study's pairs within a budget")
    train.add_argument("--staged", default="runs/gpu_study", help="what `prepare` wrote")
    train.add_argument("--workdir", default="runs/compare_gpu")
    train.add_argument("--resume-from", help="pairs finished in earlier sessions")
    train.add_argument("--out", required=True, help=f"where to write {TARBALL}")
    train.add_argument("--budget-s", type=float, default=480.0)
    train.add_argument("--models", default=",".join(MODEL_ORDER))
    train.add_argument("--datasets", default=",".join(DATASET_ORDER))
    train.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    if args.command == "run" and not all(s.isdigit() for s in args.seeds.split(",")):
        parser.error(f"--seeds takes non-negative integers, like 0,1,2, not {args.seeds!r}")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parse_args(argv)
    if args.command == "prepare":
        return prepare(args)
    return run(args, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
