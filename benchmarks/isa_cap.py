"""The benchmark's libraries on their AVX2 code paths, on a CPU that also has AVX-512.

Issue 19 measured far lower JAX/PyTorch ratios on a Zen 2 (AVX2 only) than this project's
tables from a Zen 4 with AVX-512. Every library here picks its kernels at run time from the
CPU's flags, and each but one has a switch to pick as on a narrower CPU: XLA's code generation
`--xla_cpu_max_isa`, PyTorch's ATen `ATEN_CPU_CAPABILITY`, oneDNN `ONEDNN_MAX_CPU_ISA`, MKL
`MKL_ENABLE_INSTRUCTIONS`. YNNPACK, which runs XLA's dots (and, by XLA's default, most of its
convolutions), has none: it asks
cpuinfo once and keeps the answer in a function-local static of
`ynn::get_supported_arch_flags()`. `YnnpackFlags.cap` writes the AVX2 set there, and marks it
initialised, before YNNPACK first runs; the static is found through the symbol table of jaxlib's
shared library, and the value is read back after the run to show it held.

Capped, a machine runs the code an AVX2 CPU would run, on its own caches, clocks and cores: a
ratio that stays put when capped clears the code paths and points at the micro-architecture.
Linux on x86-64 only, and only where the CPU has AVX2 and FMA itself.
"""

import argparse
import ctypes
import mmap
import os
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jaxlib
import numpy as np

from jax_models.errors import UserError

MAX_ISA_CHOICES = ("native", "avx2")
LIBRARY_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
XLA_FLAG = "--xla_cpu_max_isa=AVX2"
# sse2, ssse3, sse41, avx, f16c, avx2, fma3: the first seven bits of `ynn::arch_flag`
# (ynnpack/base/arch.h), the same in every version so far; AVX-512's start at bit 7.
YNNPACK_AVX2_FLAGS = 0x7F
YNNPACK_LIBRARY = Path(jaxlib.__file__).parent / "libjax_common.so"
YNNPACK_FLAGS_SYMBOL = "_ZZN3ynn24get_supported_arch_flagsEvE5flags"
YNNPACK_GUARD_SYMBOL = "_ZGVZN3ynn24get_supported_arch_flagsEvE5flags"
REQUIRED_EXTENSIONS = ("avx2", "fma")


def capped_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with every library's AVX2 switch set."""
    flags = environ.get("XLA_FLAGS", "")
    if XLA_FLAG not in flags.split():
        flags = f"{flags} {XLA_FLAG}".strip()
    return {**environ, **LIBRARY_ENV, "XLA_FLAGS": flags}


def environ_capped(environ: Mapping[str, str]) -> bool:
    return all(environ.get(key) == value for key, value in LIBRARY_ENV.items()) and (
        XLA_FLAG in environ.get("XLA_FLAGS", "").split()
    )


ELF_SYMBOL = np.dtype(
    [
        ("name", "<u4"),
        ("info", "u1"),
        ("other", "u1"),
        ("shndx", "<u2"),
        ("value", "<u8"),
        ("size", "<u8"),
    ]
)
SHT_SYMTAB = 2


def elf_symbols(path: Path, names: Sequence[str]) -> dict[str, int]:
    """The values (addresses relative to the load base) of `names` in a 64-bit little-endian
    ELF file's static symbol table (`.symtab`); a name it does not hold is left out."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as elf:
        if elf[:6] != b"\x7fELF\x02\x01":
            raise UserError(f"{path} is not a 64-bit little-endian ELF file.")
        (table_offset,) = struct.unpack_from("<Q", elf, 0x28)
        entry_size, count = struct.unpack_from("<HH", elf, 0x3A)
        # Elf64_Shdr: name, type, flags, addr, offset, size, link, ...
        sections = [
            struct.unpack_from("<IIQQQQI", elf, table_offset + i * entry_size) for i in range(count)
        ]
        symtab = next((s for s in sections if s[1] == SHT_SYMTAB), None)
        if symtab is None:
            return {}
        strtab = sections[symtab[6]]
        strings = elf[strtab[4] : strtab[4] + strtab[5]]
        symbols = np.frombuffer(elf[symtab[4] : symtab[4] + symtab[5]], dtype=ELF_SYMBOL)
    found = {}
    for name in names:
        # A name may also end a longer string (linkers share suffixes): try every place.
        needle, start, offsets = name.encode() + b"\0", 0, []
        while (at := strings.find(needle, start)) >= 0:
            offsets.append(at)
            start = at + 1
        match = np.flatnonzero(np.isin(symbols["name"], offsets))
        if len(match):
            found[name] = int(symbols["value"][match[0]])
    return found


def load_base(path: Path, maps: Path = Path("/proc/self/maps")) -> int:
    """Where this process mapped the start of the shared library `path`."""
    resolved = str(path.resolve())
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == resolved and int(fields[2], 16) == 0:
            return int(fields[0].split("-")[0], 16)
    raise UserError(f"{path} is not loaded in this process; import jax first.")


class YnnpackFlags:
    """YNNPACK's cached CPU flags in this process, and the guard that says they are set."""

    def __init__(self, library: Path = YNNPACK_LIBRARY):
        symbols = elf_symbols(library, (YNNPACK_FLAGS_SYMBOL, YNNPACK_GUARD_SYMBOL))
        if len(symbols) != 2:
            raise UserError(
                f"This jaxlib's {library.name} has no symbol for YNNPACK's CPU flags; "
                "--max-isa avx2 needs a jaxlib with YNNPACK and its symbol table (Linux x86-64)."
            )
        base = load_base(library)
        self._flags = ctypes.c_uint64.from_address(base + symbols[YNNPACK_FLAGS_SYMBOL])
        self._guard = ctypes.c_uint8.from_address(base + symbols[YNNPACK_GUARD_SYMBOL])

    def read(self) -> int | None:
        """The flags YNNPACK runs with; None until it first asks."""
        return self._flags.value if self._guard.value else None

    def cap(self, flags: int = YNNPACK_AVX2_FLAGS) -> None:
        if self._guard.value and self._flags.value != flags:
            raise UserError(
                "YNNPACK already chose its kernels in this process; cap it before the first "
                "JAX computation."
            )
        self._flags.value = flags
        self._guard.value = 1


def check_cpu(vector_extensions: Sequence[str]) -> None:
    missing = [name for name in REQUIRED_EXTENSIONS if name not in vector_extensions]
    if sys.platform != "linux" or missing:
        raise UserError(
            "--max-isa avx2 runs AVX2 code paths and needs Linux on a CPU with AVX2 and FMA "
            f"(this one: {sys.platform}, missing {', '.join(missing) or 'nothing'}); "
            "use --max-isa native."
        )


def main_module() -> str:
    """The `benchmarks.*` module this process runs as (`python -m`), to re-execute it."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not spec.name.startswith("benchmarks."):
        raise UserError(
            "--max-isa avx2 starts its command again: run it as `python -m benchmarks.<name>`."
        )
    return spec.name


def enter(argv: Sequence[str], vector_extensions: Sequence[str]) -> YnnpackFlags:
    """Caps this process at AVX2: re-executes its `python -m benchmarks.<name> argv` with the
    libraries' switches in its environment unless they are there already (each library reads
    its own when it starts), then caps YNNPACK. Returns the handle that reads YNNPACK's flags
    back."""
    check_cpu(vector_extensions)
    if jax.default_backend() != "cpu":
        raise UserError("--max-isa avx2 caps CPU code paths; JAX runs on an accelerator here.")
    if not environ_capped(os.environ):
        module = main_module()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", module, *argv], capped_environ(os.environ))
    ynnpack = YnnpackFlags()
    ynnpack.cap()
    return ynnpack


def record(ynnpack: YnnpackFlags | None) -> dict:
    """For a result's machine record: the CPU flags YNNPACK ran with, when it was capped."""
    if ynnpack is None:
        return {}
    flags = ynnpack.read()
    return {"ynnpack_arch_flags": None if flags is None else hex(flags)}


def add_argument(parser: argparse.ArgumentParser) -> None:
    """`--max-isa`, as every benchmark that takes it spells it."""
    parser.add_argument(
        "--max-isa",
        choices=MAX_ISA_CHOICES,
        default="native",
        help="avx2: run every library's AVX2 code paths on a CPU with AVX-512 (emulates an "
        "AVX2-only CPU's kernels, not its hardware; benchmarks/isa_cap.py)",
    )


def apply(
    max_isa: str, argv: Sequence[str] | None, vector_extensions: Sequence[str]
) -> YnnpackFlags | None:
    """`--max-isa`'s choice: nothing for native; for avx2, `enter` with this process's command
    line (`argv`, or sys.argv's where a `main` was given none)."""
    if max_isa == "native":
        return None
    return enter(sys.argv[1:] if argv is None else argv, vector_extensions)
