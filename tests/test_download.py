"""Datasets that arrive by themselves: downloads from a loopback mirror, and release checks.

A ThreadingHTTPServer on 127.0.0.1 serves generated files laid out as a mirror
(`/{dataset}/{file}`); the release table is swapped for one describing those files, so the
whole download path runs without the internet.
"""

import gzip
import hashlib
import socket
import threading
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jax_models.errors import UserError
from tests.fake_data import write_cifar_dataset, write_idx_dataset
from trainers import data, releases


class Mirror:
    """Serves `files[path] = bytes`; `truncate` names paths cut off halfway through."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: Counter[str] = Counter()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                mirror.requests[self.path] += 1
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in mirror.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror():
    served = Mirror()
    yield served
    served.close()


def release_of(source: Path, dataset: str) -> releases.Release:
    """A release table entry describing the files in `source/{dataset}/`."""
    files, content = [], {}
    for path in sorted((source / dataset).iterdir()):
        body = path.read_bytes()
        files.append(releases.ReleaseFile(path.name, hashlib.sha256(body).hexdigest(), len(body)))
        if dataset != "cifar10":
            member = gzip.decompress(body)
            content[path.name.removesuffix(".gz")] = ("sha256", hashlib.sha256(member).hexdigest())
    if dataset == "cifar10":
        content = dict(releases.RELEASES["cifar10"].content)
    return releases.Release(dataset, "https://publisher.invalid/", tuple(files), content)


def publish(mirror: Mirror, source: Path, dataset: str) -> releases.Release:
    """Serves every file of `source/{dataset}/` on the mirror; returns their release."""
    for path in (source / dataset).iterdir():
        mirror.files[f"/{dataset}/{path.name}"] = path.read_bytes()
    return release_of(source, dataset)


@pytest.fixture
def mnist_release(mirror, tmp_path, monkeypatch) -> tuple[releases.Release, dict]:
    written = write_idx_dataset(tmp_path / "served", "mnist")
    release = publish(mirror, tmp_path / "served", "mnist")
    monkeypatch.setitem(releases.RELEASES, "mnist", release)
    return release, written


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_auto_downloads_verifies_and_does_not_download_again(mirror, mnist_release, tmp_path):
    _, written = mnist_release
    loaded = data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=mirror.url)
    np.testing.assert_array_equal(loaded.splits["test"].images, written["test"][0])
    np.testing.assert_array_equal(loaded.splits["train"].labels, written["train"][1])
    assert loaded.provenance["matches_official_release"] is True
    assert sorted(mirror.requests.values()) == [1, 1, 1, 1]
    assert leftovers(tmp_path / "data" / "mnist") == []

    data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=mirror.url)
    assert sum(mirror.requests.values()) == 4  # the second run reads the verified files


def test_cifar_archive_downloads(mirror, tmp_path, monkeypatch):
    written = write_cifar_dataset(tmp_path / "served")
    monkeypatch.setitem(
        releases.RELEASES, "cifar10", publish(mirror, tmp_path / "served", "cifar10")
    )
    loaded = data.load_dataset("cifar10", str(tmp_path / "data"), "auto", mirror=mirror.url)
    np.testing.assert_array_equal(loaded.splits["train"].images, written["train"][0])
    assert (tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz").is_file()
    # Generated batches are not CIFAR-10's: recorded, not refused.
    assert loaded.provenance["matches_official_release"] is False


def test_interrupted_download_keeps_nothing_half_written_and_resumes(
    mirror, mnist_release, tmp_path
):
    release, _ = mnist_release
    broken = f"/mnist/{release.files[2].name}"
    mirror.truncate.add(broken)
    directory = tmp_path / "data" / "mnist"
    with pytest.raises(UserError, match=f"Could not download {mirror.url}{broken} .*broke off"):
        data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=mirror.url)
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        f.name for f in release.files[:2]
    )  # the two files before the break are whole and verified; no partial file is left

    mirror.truncate.clear()
    loaded = data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=mirror.url)
    assert loaded.provenance["matches_official_release"] is True
    assert mirror.requests[f"/mnist/{release.files[0].name}"] == 1  # not fetched again
    assert mirror.requests[broken] == 2
    assert leftovers(directory) == []


def test_checksum_mismatch_names_file_and_both_digests(
    mirror, mnist_release, tmp_path, monkeypatch
):
    release, _ = mnist_release
    wrong = replace(release.files[0], sha256="0" * 64)
    monkeypatch.setitem(
        releases.RELEASES, "mnist", replace(release, files=(wrong, *release.files[1:]))
    )
    with pytest.raises(UserError) as error:
        data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=mirror.url)
    message = str(error.value)
    assert f"{wrong.name} downloaded from {mirror.url}/mnist/{wrong.name}" in message
    assert f"has sha256 {release.files[0].sha256}, but the official file has {'0' * 64}" in message
    assert "nothing was kept" in message and "run again" in message
    assert not (tmp_path / "data" / "mnist" / wrong.name).exists()
    assert leftovers(tmp_path / "data" / "mnist") == []


def test_unreachable_server_names_url_and_the_manual_way(mnist_release, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(UserError) as error:
        data.load_dataset("mnist", str(tmp_path / "data"), "auto", mirror=url)
    message = str(error.value)
    first, *others = mnist_release[0].files
    assert f"Could not download {url}/mnist/{first.name} (Connection refused)" in message
    assert all(file.name in message for file in others)  # which files to put where
    assert f"into {tmp_path / 'data' / 'mnist'} yourself" in message
    assert "--config.data_mirror" in message


def test_files_that_are_not_the_official_release_are_recorded(tmp_path, caplog):
    write_idx_dataset(tmp_path, "fashion_mnist")
    loaded = data.load_dataset("fashion_mnist", str(tmp_path), "files")
    assert loaded.provenance.pop("content_sha256") == data.content_sha256(loaded.splits)
    assert loaded.provenance == {
        "source": "files",
        "directory": str(tmp_path / "fashion_mnist"),
        "matches_official_release": False,
        "differing_files": list(releases.RELEASES["fashion_mnist"].content),
    }
    warnings = [
        r.getMessage() for r in caplog.records if "differ from the official" in r.getMessage()
    ]
    assert len(warnings) == 1 and "data.matches_official_release=false" in warnings[0]


def test_official_files_of_another_dataset_are_refused(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "served", "fashion_mnist")
    official_fashion = release_of(tmp_path / "served", "fashion_mnist")
    monkeypatch.setitem(releases.RELEASES, "fashion_mnist", official_fashion)
    (tmp_path / "served" / "fashion_mnist").rename(tmp_path / "served" / "mnist")
    with pytest.raises(UserError) as error:
        data.load_dataset("mnist", str(tmp_path / "served"), "files")
    assert str(error.value) == (
        f"{tmp_path / 'served' / 'mnist'} holds the official fashion_mnist files, not mnist's; "
        f"move them to {tmp_path / 'served' / 'fashion_mnist'} or set "
        "--config.dataset=fashion_mnist."
    )


def test_files_mode_without_files_points_at_auto(tmp_path):
    with pytest.raises(UserError, match="use --config.data_source=auto to download them"):
        data.load_dataset("mnist", str(tmp_path), "files")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"),
            "preparing it needs TensorFlow, which is not installed",
        ),
        (
            data.requests.ConnectionError("[Errno -2] Name or service not known"),
            "it could not be downloaded (Name or service not known)",
        ),
    ],
)
def test_tfds_failure_says_the_true_reason_and_both_ways_out(
    tmp_path, monkeypatch, failure, reason
):
    def fail(*args, **kwargs):
        raise RuntimeError("Failed to construct dataset") from failure

    monkeypatch.setattr(tfds, "data_source", fail)
    with pytest.raises(UserError) as error:
        data.load_dataset("mnist", str(tmp_path), "tfds")
    assert str(error.value) == (
        f"tfds could not serve mnist: {reason}; either install TensorFlow (pip install "
        "tensorflow) so tfds can prepare it, or use --config.data_source=auto, which downloads "
        f"the publisher's files into {tmp_path / 'mnist'}."
    )
