"""Hostile and malformed NIfTI headers: 240 seeded mutations of a small IXI T2 file written by nibabel.

Each mutated file (dims, voxel sizes, sform and qform, xform codes, vox_offset, datatype and bitpix,
scaling, magic and header size, extensions, random bytes; gzipped or not) goes through ``load_volume``
(the reader of the plugin and of every command), ``medsynth check`` and, for 20 of them, ``medsynth
synthesize``. Each must end in one clear line, or in a read equal to what the file holds as this file
decodes it by the NIfTI-1 standard without nibabel, without allocating more than the file holds. How fast
(it was: under 2 s a read, 4 s a check) is benchmarks/bench_nifti_checks.py's, not a test's: a loaded machine
is slow without a bug.
"""

from __future__ import annotations

import gzip
import math
import struct
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import IXI_AFFINE, smooth_volume, write_nifti

from napari_medsynth.cli import main
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR

SEED = 20240611
N_CASES = 240
SHAPE = (12, 10, 8)
# Besides the voxels, reading may allocate nibabel's and gzip's buffers (64 kB chunks) and a few copies.
MEMORY_OVERHEAD = 256_000
CHECK_LINES = ("  ", "checking pairs", "medsynth: warning: ", "medsynth: error: ")  # a pair's problem, the bar
GENERATOR = BUNDLED_DIR / "t2-pd-G1.pt"  # T2 -> PD, the contrast of the fuzzed files

# NIfTI-1 datatype codes and their numpy types, as the standard defines them.
STANDARD_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
                   1024: "i8", 1280: "u8"}
OTHER_CODES = [0, 1, 3, 32, 128, 255, 999, 1536, 1792, 2048, 2304, -1, 16384]
ODD_FLOATS = [0.0, -0.9375, math.nan, math.inf, -math.inf, 1e-30, 1e30, 2.0]


@dataclass(frozen=True)
class Case:
    index: int
    kinds: str
    gz: bool
    dtype: str
    patches: tuple  # (byte offset, struct format, values)

    @property
    def name(self) -> str:
        return f"IXI{self.index:03d}-Fuzz-{self.index:04d}-T2.nii" + (".gz" if self.gz else "")


def _base_length(dtype: str) -> int:
    return 352 + math.prod(SHAPE) * np.dtype(dtype).itemsize


def _dims(rng, dtype):
    choice = rng.integers(3)
    if choice == 0:  # one axis changed: smaller ones are reads of a prefix of the voxels
        axis = int(rng.integers(1, 4))
        return [(40 + 2 * axis, "<h", int(rng.integers(-2, 30)))]
    if choice == 1:
        ndim = int(rng.choice([-1, 0, 1, 2, 4, 4, 5, 7, 8, 9, 256, 768]))
        return [(40, "<h", ndim), (48, "<4h", tuple(int(v) for v in rng.choice([1, 1, 2, 0, -1], 4)))]
    return [(40, "<8h", tuple(int(v) for v in rng.integers(-32768, 32768, 8)))]


def _huge(rng, dtype):
    if rng.random() < 0.3:
        return [(40, "<8h", (7, *[32767] * 7))]  # about 10^31 voxels
    return [(42, "<3h", tuple(int(v) for v in rng.integers(1000, 32768, 3)))]  # GB to hundreds of TB


def _pixdim(rng, dtype):
    patches = [(80 + 4 * i, "<f", float(rng.choice(ODD_FLOATS))) for i in range(3) if rng.random() < 0.6]
    if rng.random() < 0.6:  # no sform: the qform (or the voxel sizes alone) places the voxels
        patches.append((254, "<h", 0))
        if rng.random() < 0.4:
            patches.append((252, "<h", 0))
    return patches or [(84, "<f", 0.0)]


def _sform(rng, dtype):
    choice = rng.integers(3)
    if choice == 0:
        values = [math.nan, math.inf, -math.inf, 0.0, 1e30, -1e-30, float(rng.normal())]
        return [(280 + 4 * int(i), "<f", float(rng.choice(values))) for i in rng.integers(0, 12, rng.integers(1, 4))]
    column = int(rng.integers(3))
    if choice == 1:  # a voxel axis of length 0
        return [(280 + 16 * row + 4 * column, "<f", 0.0) for row in range(3)]
    return [(280 + 16 * row + 4 * column, "<f", value)  # (nearly) along the second voxel axis
            for row, value in enumerate([0.0, 0.9375, 1e-9])]


def _qform(rng, dtype):
    values = [float(rng.uniform(-1, 1)), 5.0, math.nan, 0.7, -0.7]
    patches = [(256, "<3f", tuple(float(rng.choice(values)) for _ in range(3))),
               (76, "<f", float(rng.choice([-1.0, 1.0, 0.0, 2.0, math.nan])))]
    if rng.random() < 0.3:
        patches.append((268 + 4 * int(rng.integers(3)), "<f", float(rng.choice([math.nan, math.inf, 1e30]))))
    if rng.random() < 0.7:
        patches.append((254, "<h", 0))
    return patches


def _codes(rng, dtype):
    codes = [-1, 0, 1, 2, 3, 4, 5, 6, 99, 32767]
    return [(252, "<2h", (int(rng.choice(codes)), int(rng.choice(codes))))]


def _vox_offset(rng, dtype):
    length = _base_length(dtype)
    values = [0, 100, 348, 351, 352.5, 353, 368, 400, length, length + 1, 2**31, 1e20, -352, math.nan, math.inf]
    return [(108, "<f", float(rng.choice(values)))]


def _datatype(rng, dtype):
    code = int(rng.choice([*STANDARD_DTYPES, *OTHER_CODES]))
    patches = [(70, "<h", code)]
    if code in STANDARD_DTYPES and rng.random() < 0.6:  # a consistent header that misreads the voxels
        patches.append((72, "<h", 8 * np.dtype(STANDARD_DTYPES[code]).itemsize))
    return patches


def _bitpix(rng, dtype):
    return [(72, "<h", int(rng.choice([0, 1, 8, 16, 24, 32, 64, 128, -32, 999])))]


def _scaling(rng, dtype):
    slope = float(rng.choice([0.0, math.nan, math.inf, -math.inf, 2.5, -1.0, 1e-3, 1e36, 3e37]))
    inter = float(rng.choice([0.0, math.nan, math.inf, -math.inf, 100.0, -7.5]))
    return [(112, "<2f", (slope, inter))]


def _magic(rng, dtype):
    if rng.random() < 0.5:
        return [(344, "4s", bytes(rng.choice([b"ni1\0", b"n+2\0", b"abcd", b"\0\0\0\0", b"n+1x"])))]
    return [(0, str(rng.choice(["<i", ">i"])), int(rng.choice([348, 0, 540, 1234, -1])))]


def _extension(rng, dtype):
    room = int(rng.choice([0, 16, 48, 400, 10**9]))  # bytes between the header and the voxels
    esize = int(rng.choice([0, 8, 15, 16, 32, 48, 64, 2**31 - 1, -16, room]))
    return [(348, "<B", int(rng.integers(1, 256))), (352, "<2i", (esize, int(rng.choice([0, 2, 4, 6, 44, 999])))),
            (108, "<f", float(352 + room)), (46, "<h", 4)]  # half the slices: the voxels still fit after the room


def _random_bytes(rng, dtype):
    return [(int(at), "<B", int(rng.integers(256))) for at in rng.integers(0, 352, rng.integers(1, 9))]


MUTATIONS = {"dims": _dims, "huge": _huge, "pixdim": _pixdim, "sform": _sform, "qform": _qform, "codes": _codes,
             "vox_offset": _vox_offset, "datatype": _datatype, "bitpix": _bitpix, "scaling": _scaling,
             "magic": _magic, "extension": _extension, "bytes": _random_bytes}


def _cases() -> list[Case]:
    rng = np.random.default_rng(SEED)
    names = list(MUTATIONS)
    cases = []
    for index in range(N_CASES):
        kinds = [names[index % len(names)]]  # every kind alone in turn, then with up to two others
        kinds += [str(k) for k in rng.choice(names, rng.choice([0, 0, 1, 2]), replace=False) if k != kinds[0]]
        dtype = str(rng.choice(["float32", "int16"]))
        patches = tuple(patch for kind in kinds for patch in MUTATIONS[kind](rng, dtype))
        cases.append(Case(index, "+".join(kinds), bool(rng.random() < 0.5), dtype, patches))
    return cases


CASES = _cases()


def _base_bytes(dtype: str, folder: Path) -> bytes:
    return write_nifti(folder / f"base-{dtype}.nii", smooth_volume(SHAPE, seed=1), dtype=np.dtype(dtype)).read_bytes()


def _mutated(base: bytes, case: Case) -> bytes:
    data = bytearray(base)
    for offset, fmt, values in case.patches:
        struct.pack_into(fmt, data, offset, *(values if isinstance(values, tuple) else (values,)))
    return bytes(data)


def _write(path: Path, raw: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every case as ``(folder, fuzzed T2 path, uncompressed bytes)``, with an intact PD partner in its folder."""
    root = tmp_path_factory.mktemp("fuzz")
    bases = {dtype: _base_bytes(dtype, root) for dtype in ("float32", "int16")}
    written = {}
    for case in CASES:
        folder = root / f"{case.index:03d}"
        folder.mkdir()
        raw = _mutated(bases[case.dtype], case)
        _write(folder / case.name.replace("-T2.", "-PD."), bases[case.dtype], case.gz)
        written[case.index] = (folder, _write(folder / case.name, raw, case.gz), raw)
    return written


def standard_read(raw: bytes):
    """``(shape, float32 voxels (non-finite set to 0), srow or None, pixdim[1:4])`` of a single-file
    NIfTI-1 image decoded by the standard with numpy alone, or None where the standard cannot decode it."""
    order = "<" if 1 <= struct.unpack_from("<h", raw, 40)[0] <= 7 else ">"  # dim[0] out of 1..7: swapped
    dim = struct.unpack_from(order + "8h", raw, 40)
    datatype, bitpix = struct.unpack_from(order + "2h", raw, 70)
    pixdim = struct.unpack_from(order + "8f", raw, 76)
    vox_offset, slope, inter = struct.unpack_from(order + "3f", raw, 108)
    sform_code = struct.unpack_from(order + "h", raw, 254)[0]
    shape = dim[1:dim[0] + 1]
    if not 1 <= dim[0] <= 7 or min(shape) < 1 or datatype not in STANDARD_DTYPES:
        return None
    dtype = np.dtype(STANDARD_DTYPES[datatype]).newbyteorder(order)
    count = math.prod(shape)
    if bitpix != 8 * dtype.itemsize or not vox_offset >= 352 or int(vox_offset) + count * dtype.itemsize > len(raw):
        return None
    values = np.frombuffer(raw, dtype, count, int(vox_offset)).reshape(shape, order="F").astype(np.float64)
    if slope != 0 and math.isfinite(slope):  # a slope of 0 (or not a number) means no scaling
        if not math.isfinite(inter):
            return None
        values = values * slope + inter
    with np.errstate(over="ignore", invalid="ignore"):
        voxels = values.astype(np.float32)
    voxels[~np.isfinite(voxels)] = 0
    while voxels.ndim > 3 and voxels.shape[-1] == 1:
        voxels = voxels[..., 0]
    srow = np.array(struct.unpack_from(order + "12f", raw, 280)).reshape(3, 4)
    return voxels.shape, voxels, srow if sform_code in (1, 2, 3, 4, 5) else None, np.array(pixdim[1:4])


def _read(path: Path):
    """``load_volume(path)`` or its MedSynthError, the peak bytes allocated, and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracemalloc.start()
        try:
            outcome = load_volume(path)
        except MedSynthError as error:
            outcome = error
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return outcome, peak, [str(w.message) for w in caught]


def _assert_one_line(message: str, name: str) -> None:
    assert message.startswith(f"{name}: ") and "\n" not in message and len(message) < 300, message


@pytest.mark.parametrize("case", CASES, ids=[f"{c.index:03d}-{c.kinds}" for c in CASES])
def test_the_reader_refuses_in_one_line_or_reads_what_the_file_holds(case, files):
    _, path, raw = files[case.index]
    outcome, peak, caught = _read(path)

    assert peak < MEMORY_OVERHEAD + 8 * len(raw), f"{peak} bytes allocated for a file of {len(raw)}"
    for message in caught:
        _assert_one_line(message, case.name)
    if isinstance(outcome, MedSynthError):
        _assert_one_line(str(outcome), case.name)
        return
    expected = standard_read(raw)
    assert expected is not None, f"read {outcome.data.shape} where the standard decodes nothing"
    shape, voxels, srow, pixdim = expected
    assert outcome.data.shape == shape and outcome.data.dtype == np.float32
    np.testing.assert_allclose(outcome.data, voxels, rtol=1e-6, atol=0)
    affine = outcome.affine
    assert np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 0
    if srow is not None:
        np.testing.assert_allclose(affine[:3], srow, rtol=1e-6)
    else:  # the qform or the voxel sizes alone: either way the pixdim are the voxel sizes
        np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), pixdim, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.index:03d}-{c.kinds}" for c in CASES])
def test_check_ends_in_one_error_line_or_a_verdict(case, files, capsys):
    folder, path, _ = files[case.index]
    outcome = _read(path)[0]

    code = main(["check", str(folder)])

    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith(CHECK_LINES) for line in lines), err
    if isinstance(outcome, MedSynthError):
        assert code == 1 and f"  {outcome}" in lines
    assert sum(line.startswith("medsynth: error: ") for line in lines) == code, err


def test_well_formed_files_the_checks_must_not_refuse(tmp_path):
    """NIfTI-2, a big-endian header, a multi-member gzip (as bgzip writes, so the ISIZE trailer covers only the
    last member) and a trailing singleton dimension."""
    voxels = smooth_volume(SHAPE, seed=3)
    raw = write_nifti(tmp_path / "a.nii", voxels).read_bytes()
    nib.save(nib.Nifti2Image(voxels, IXI_AFFINE), tmp_path / "nifti2.nii.gz")
    big_endian = nib.Nifti1Header(endianness=">")
    nib.save(nib.Nifti1Image(voxels.astype(">f4"), IXI_AFFINE, header=big_endian), tmp_path / "big-endian.nii")
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    write_nifti(tmp_path / "singleton.nii.gz", voxels[..., None])
    for name in ("nifti2.nii.gz", "big-endian.nii", "members.nii.gz", "singleton.nii.gz"):
        volume = load_volume(tmp_path / name)
        np.testing.assert_array_equal(volume.data, voxels)
        np.testing.assert_allclose(volume.affine, IXI_AFFINE)


def test_synthesize_ends_in_one_error_line_or_a_result_on_the_source_grid(files, tmp_path, capsys):
    """20 cases, 15 refused and 5 read (synthesis on the report grid at stride 32 takes ~2 s each)."""
    outcomes = {case.index: _read(files[case.index][1])[0] for case in CASES}
    refused = [i for i, outcome in outcomes.items() if isinstance(outcome, MedSynthError)][:15]
    read = [i for i, outcome in outcomes.items() if not isinstance(outcome, MedSynthError)][:5]
    for index in refused + read:
        path, out = files[index][1], tmp_path / f"{index:03d}-PD_synth.nii.gz"

        code = main(["synthesize", str(path), "--checkpoint", str(GENERATOR), "--out", str(out), "--stride", "32",
                     "--grid", "report", "--device", "cpu"])

        err = capsys.readouterr().err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("medsynth: error:")]
        if index in refused:
            assert code == 1 and errors == [f"medsynth: error: {outcomes[index]}"] and not out.exists()
        elif code == 0:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                synthesis = load_volume(out)
            assert all("disagree" in str(w.message) for w in caught)  # a qform that places nothing is not passed on
            assert synthesis.data.shape == outcomes[index].data.shape
            np.testing.assert_allclose(synthesis.affine, outcomes[index].affine, rtol=1e-6)
        else:
            assert len(errors) == 1 and not out.exists()


def test_the_fuzz_ends_both_ways_and_every_kind_of_mutation_is_refused_somewhere(files):
    refused = {case.index: isinstance(_read(files[case.index][1])[0], MedSynthError) for case in CASES}
    print(f"{N_CASES} fuzzed headers: {sum(refused.values())} refused, {N_CASES - sum(refused.values())} read")
    assert {kind for case in CASES if refused[case.index] for kind in case.kinds.split("+")} == set(MUTATIONS)
    assert N_CASES - sum(refused.values()) >= 40
