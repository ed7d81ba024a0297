"""Fetches a dataset's official files, verified, so that a run never starts on half a file.

pooch's HTTP downloader streams each file (requests underneath, a tqdm bar with size and
speed) into a temporary name beside its destination; only a file whose sha256 matches the
release is renamed into place. A failed, interrupted or corrupted download therefore leaves
nothing that a later run could mistake for a good file, and the next run fetches it again.
"""

import hashlib
import os
import re
from pathlib import Path

import pooch
import requests
from absl import logging
from tqdm import tqdm

from jax_models.errors import UserError
from trainers.releases import Release, ReleaseFile

TIMEOUT_S = 60
CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def short_reason(error: requests.RequestException) -> str:
    """The useful part of a requests error, without urllib3's pool and object reprs."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.Timeout):
        return f"no answer within {TIMEOUT_S} s"
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip()
    if "IncompleteRead" in text or isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the file was complete"
    return text.splitlines()[0][:200] if text else type(error).__name__


def manual_alternative(release: Release, directory: Path) -> str:
    names = ", ".join(file.name for file in release.files)
    return (
        f"put {names} from {release.base_url} into {directory} yourself, or point "
        "--config.data_mirror at a server laid out as MIRROR/"
        f"{release.dataset}/FILE"
    )


def fetch_file(release: Release, file: ReleaseFile, directory: Path, mirror: str = "") -> Path:
    """Downloads one release file into `directory` and verifies its sha256 before keeping it."""
    url = release.url(file, mirror)
    target = directory / file.name
    partial = directory / f".{file.name}.{os.getpid()}.part"
    bar = tqdm(
        desc=file.name, total=file.size, unit="B", unit_scale=True, unit_divisor=1024, miniters=1
    )
    try:
        try:
            downloader = pooch.HTTPDownloader(
                progressbar=bar, chunk_size=CHUNK_BYTES, timeout=TIMEOUT_S
            )
            downloader(url, str(partial), None)
        except requests.RequestException as error:
            raise UserError(
                f"Could not download {url} ({short_reason(error)}); "
                f"{manual_alternative(release, directory)}."
            ) from error
        finally:
            bar.close()
        actual = file_sha256(partial)
        if actual != file.sha256:
            raise UserError(
                f"{file.name} downloaded from {url} has sha256 {actual}, but the official "
                f"file has {file.sha256}; nothing was kept. The server sent another or a "
                f"damaged file: run again, or {manual_alternative(release, directory)}."
            )
        partial.replace(target)
    except OSError as error:
        raise UserError(
            f"Cannot write {target} ({error.strerror or error}); choose a writable "
            "--config.data_dir."
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def fetch_release(
    release: Release, directory: Path, files: list[ReleaseFile], mirror: str = ""
) -> None:
    """Downloads `files` of `release` into `directory`, announcing what and from where."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"Cannot create {directory} ({error.strerror or error}); choose a writable "
            "--config.data_dir."
        ) from error
    megabytes = sum(file.size for file in files) / 1e6
    where = mirror or release.base_url
    logging.info(
        "Downloading %s (%d files, %.1f MB) from %s into %s",
        release.dataset,
        len(files),
        megabytes,
        where,
        directory,
    )
    for file in files:
        fetch_file(release, file, directory, mirror)
