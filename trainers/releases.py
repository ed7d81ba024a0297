"""What each publisher released: download URLs and digests, and digests of the content.

Two kinds of digest, for two questions. `sha256` of each downloaded file proves a download
complete and untampered. The content digest of each file after decompression (the IDX file
inside the gzip, the pickled batch inside the tar) proves that files found on disk hold the
official data, whatever gzip or tar wrapper they came in, and recognises one dataset's files
sitting in another's folder.
"""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseFile:
    """One file as the publisher serves it."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """A dataset's official files and the digests of what they hold."""

    dataset: str
    base_url: str
    files: tuple[ReleaseFile, ...]
    # Decompressed member name -> (hashlib algorithm, hex digest) of its bytes.
    content: dict[str, tuple[str, str]]

    def url(self, file: ReleaseFile, mirror: str = "") -> str:
        """The publisher's URL, or `{mirror}/{dataset}/{name}` when a mirror is set."""
        if mirror:
            return f"{mirror.rstrip('/')}/{self.dataset}/{file.name}"
        return f"{self.base_url}{file.name}"


def content_digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


# URLs and download digests are those tensorflow-datasets registers for MNIST and
# Fashion-MNIST (url_checksums/*.txt); Google's cvdf mirror serves MNIST since
# yann.lecun.com stopped serving it. The IDX content digests were computed from files checked
# byte for byte (Fashion-MNIST) and pixel for pixel (MNIST) against the official ones.
RELEASES: dict[str, Release] = {
    "mnist": Release(
        "mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        (
            ReleaseFile(
                "train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                9912422,
            ),
            ReleaseFile(
                "train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                28881,
            ),
            ReleaseFile(
                "t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                1648877,
            ),
            ReleaseFile(
                "t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                4542,
            ),
        ),
        {
            "train-images-idx3-ubyte": (
                "sha256",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            "train-labels-idx1-ubyte": (
                "sha256",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            "t10k-images-idx3-ubyte": (
                "sha256",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            "t10k-labels-idx1-ubyte": (
                "sha256",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        },
    ),
    "fashion_mnist": Release(
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            ReleaseFile(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                26421880,
            ),
            ReleaseFile(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                29515,
            ),
            ReleaseFile(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                4422102,
            ),
            ReleaseFile(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                5148,
            ),
        ),
        {
            "train-images-idx3-ubyte": (
                "sha256",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            "train-labels-idx1-ubyte": (
                "sha256",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            "t10k-images-idx3-ubyte": (
                "sha256",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            "t10k-labels-idx1-ubyte": (
                "sha256",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        },
    ),
    # The archive's sha256 is the one Keras verifies; the batches' md5 digests are the ones
    # torchvision verifies, the only published digests of CIFAR-10's content.
    "cifar10": Release(
        "cifar10",
        "https://www.cs.toronto.edu/~kriz/",
        (
            ReleaseFile(
                "cifar-10-python.tar.gz",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                170498071,
            ),
        ),
        {
            "data_batch_1": ("md5", "c99cafc152244af753f735de768cd75f"),
            "data_batch_2": ("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
            "data_batch_3": ("md5", "54ebc095f3ab1f0389bbae665268c751"),
            "data_batch_4": ("md5", "634d18415352ddfa80567beed471001a"),
            "data_batch_5": ("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            "test_batch": ("md5", "40351d587109b95175f43aff81a1287e"),
        },
    ),
}
