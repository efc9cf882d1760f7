"""Transform-domain 3D convolution for the generator's large dilated kernels.

:func:`fft_conv3d` computes what ``F.conv3d(x, w, b, padding=d*(k-1)//2, dilation=d)`` computes
(stride 1, zero 'same' padding, odd kernels, any input size) up to float32 rounding, and is
differentiable with respect to input, weight and bias. :class:`FFTConv3d` is an ``nn.Conv3d``
that uses it; :func:`set_conv_engine` switches a model's convolutions between ``"direct"``,
``"fft"`` and ``"auto"``, and :func:`conv_engines` reports what each one uses.

Measurements (timings, the design alternatives, the fit of the cost constants): docs/performance.md.

How it works
------------
*Polyphase split.* With dilation ``d`` only voxels whose coordinates agree modulo ``d``
interact, so the input splits into ``d^3`` sub-grids convolved with the undilated kernel, all
sharing one kernel spectrum (32^3 patches, ``d = 2``: eight 16^3 problems with a 9^3 kernel).

*The shortest circular convolution.* Along an axis of ``n`` sub-grid voxels and a kernel of
half-width ``h``, a circular convolution of length ``L = n + h`` already gives the 'same'
output (the ``h`` zeros after the data are the halo on both sides). Axes too long for one
transform (whole-volume previews) use overlap-save blocks of ``bs`` outputs, ``L = bs + 2h``.
The plan (one block or a block size, per axis) minimises an estimated cost (:func:`_cost`)
with the kernel spectrum below ``SPECTRUM_BUDGET``; phases, blocks and batch together form one
matrix dimension ``P`` that reuses the spectrum. Larger problems run in chunks of ``P`` below
``CHUNK_BUDGET``.

*Transforms as matrix products.* The DFTs are short (``L`` of 10-60) and pruned (``w`` inputs
in, only the ``bs`` needed outputs out), so each axis is a product with a dense DFT matrix,
complex numbers as 2x2 real blocks. The data stay in the layout ``(spatial..., channel, P)``
with the real/imaginary index next to the axis being transformed, so each of the seven stages
is one (batched) real GEMM with no transposition between them: axis 1 real -> half spectrum,
axes 2 and 3 complex, per frequency the channel mixing ``[Yr; Yi] = [[Wr, -Wi], [Wi, Wr]]
[Xr; Xi]`` (one real matmul), then the inverse in reverse order ending in real outputs. The
bias is added to the zero-frequency term. Only two copies touch the voxels: the gather into
that layout and a two-step scatter (a 2D transpose, then the phase interleave) back.

*Caches and buffers.* Kernel spectra ((F, 2 out, 2 in) float32, ``F = (L1//2+1) L2 L3``) are
cached per weight tensor, its ``_version`` and data pointer, plan, device and dtype, in an
LRU of at most ``CACHE_BUDGET`` bytes whose entries die with their weight; they are
recomputed (differentiably) whenever autograd records through the weight. On the CPU, when
autograd records nothing, the stages write into two per-thread workspace buffers reused
across calls. :func:`clear_caches` frees both.

*Layouts and dtypes.* The input may be contiguous or channels-last (the gather from
channels-last is cheaper); the output is always channels-last (``torch.channels_last_3d``),
the cheaper scatter target. Half-precision inputs (training under CUDA autocast) are computed
in float32 (autocast is off inside) and cast back. The same code runs on CUDA (cuBLAS matmuls).

The "auto" rule
---------------
A layer convolves in the transform domain when its direct multiply-adds exceed ``AUTO_RATIO``
times :func:`_cost` plus ``OVERHEAD_COST``, for the input's batch and size (decided at forward
time, the same in training). :func:`_cost` counts the seven products' multiply-adds plus
``STREAM_COST`` per element they read or write and ``COPY_COST`` per element of the strided
copies; ``OVERHEAD_COST`` is the fixed latency of one call on a CPU shared with another
process, so the rule is conservative on an idle CPU. The rule counts the forward pass: when
autograd records a layer on a CPU (training), the direct backward of a large kernel dominates,
so every kernel of ``TRAINING_KERNEL`` voxels or more goes to the transform domain and the
smaller ones keep the forward rule.
"""
from __future__ import annotations

import functools
import itertools
import math
import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import Engine

__all__ = ["FFTConv3d", "clear_caches", "conv_engines", "fft_conv3d", "set_conv_engine"]

SPECTRUM_BUDGET = 320 * 2**20  # bytes of one layer's kernel spectrum
CACHE_BUDGET = 1 << 30  # bytes of cached kernel spectra, all layers together
CHUNK_BUDGET = 320 * 2**20  # bytes of the largest intermediate of one chunk of P
STREAM_COST = 15  # multiply-adds that cost as much as one element read or written by a matrix product
COPY_COST = 60  # ... by a strided copy
OVERHEAD_COST = 4.5e9  # multiply-add equivalents of one call's fixed latency (see "auto" above)
AUTO_RATIO = 1.5  # "auto" uses the transform domain above this ratio of estimated costs
TRAINING_KERNEL = 5**3  # ... and, when training on a CPU, for kernels of this many voxels or more


class _Axis(NamedTuple):
    """One axis of a plan, in sub-grid voxels (the input is split into ``d`` phases)."""

    d: int  # dilation: number of phases
    h: int  # kernel half-width
    n: int  # sub-grid length, ceil(N / d)
    L: int  # transform length
    w: int  # input window of one block
    bs: int  # outputs of one block
    nb: int  # number of blocks
    m0: int  # index of the first output in the circular result


def _axis_options(size: int, kernel: int, dilation: int) -> list[_Axis]:
    """A single transform of ``n + h``, and overlap-save blocks of each useful size."""
    h, n = (kernel - 1) // 2, -(-size // dilation)
    options = [_Axis(dilation, h, n, n + h, n, n, 1, h)]
    for bs in sorted({-(-n // nb) for nb in range(2, n + 1)}, reverse=True):
        if bs + 2 * h < n + h and bs >= max(h, 2):
            options.append(_Axis(dilation, h, n, bs + 2 * h, bs + 2 * h, bs, -(-n // bs), 2 * h))
    return options


def _spectrum_size(axes) -> int:
    """Frequencies of the half spectrum: ``(L1//2+1) L2 L3``."""
    return (axes[0].L // 2 + 1) * axes[1].L * axes[2].L


def _cost(axes, cin: int, cout: int, batch: int) -> float:
    """Estimated cost of the transform-domain convolution in multiply-add equivalents: the
    matrix products' multiply-adds plus, per element a stage reads or writes, ``STREAM_COST``
    (``COPY_COST`` for the gather and scatter copies), and reading the kernel spectrum."""
    a1, a2, a3 = axes
    f1 = a1.L // 2 + 1
    freq = _spectrum_size(axes)
    p = batch * math.prod(a.d * a.nb for a in axes)
    window, block = a1.w * a2.w * a3.w, a1.bs * a2.bs * a3.bs
    # elements written by each stage, per input (forward) and output (inverse) channel
    forward = (2 * f1 * a2.w * a3.w, 2 * f1 * a2.L * a3.w, 2 * freq)
    inverse = (2 * f1 * a2.L * a3.bs, 2 * f1 * a2.bs * a3.bs, block)
    macs = (cin * (2 * f1 * window + 2 * a2.w * forward[1] + 2 * a3.w * forward[2])
            + cout * (2 * a3.L * inverse[0] + 2 * a2.L * inverse[1] + 2 * f1 * inverse[2])
            + 4 * freq * cin * cout)
    streamed = cin * (window + 2 * sum(forward)) + cout * (2 * sum(inverse) + 4 * freq)
    copied = 2 * (cin * window + 2 * cout * block)
    return p * (macs + STREAM_COST * streamed + COPY_COST * copied) + STREAM_COST * 4 * freq * cin * cout


@functools.lru_cache(maxsize=256)
def _plan(spatial: tuple, kernel: tuple, dilation: tuple, cin: int, cout: int, batch: int) -> tuple:
    """The per-axis plan of least :func:`_cost` whose spectrum fits ``SPECTRUM_BUDGET``."""
    def key(axes):  # over the budget (only if nothing fits): the smallest spectrum
        over = 16 * cin * cout * _spectrum_size(axes) > SPECTRUM_BUDGET
        return over, _spectrum_size(axes) if over else _cost(axes, cin, cout, batch)

    return min(itertools.product(*(_axis_options(*a) for a in zip(spatial, kernel, dilation))), key=key)


# DFT matrices (float64 -> dtype), complex numbers as 2x2 real blocks.


def _phases(rows: range, cols: range, length: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    angle = sign * 2 * math.pi * torch.outer(torch.tensor(rows, dtype=torch.float64),
                                             torch.tensor(cols, dtype=torch.float64)) / length
    return torch.cos(angle), torch.sin(angle)


@functools.lru_cache(maxsize=128)
def _dft_matrix(kind: str, length: int, size: int, start: int, dtype: torch.dtype, device: torch.device):
    """``"real"``: (2F, size) rows (k, re/im) from real input; ``"complex"``: (2L, 2 size) rows
    (k, re/im), columns (re/im, a); ``"inverse"``: (2 size, 2L) rows (re/im, m), columns
    (k, re/im), outputs ``start .. start+size-1``; ``"inverse-real"``: (size, 2F) real outputs
    of a half spectrum. Normal tensors even in inference mode, so autograd may save them."""
    with torch.inference_mode(False):
        return _dft_matrix64(kind, length, size, start).to(device=device, dtype=dtype)


def _dft_matrix64(kind: str, length: int, size: int, start: int) -> torch.Tensor:
    half = length // 2 + 1
    if kind == "real":
        c, s = _phases(range(half), range(size), length, -1)
        m = torch.stack([c, s], 1).reshape(2 * half, size)
    elif kind == "complex":
        c, s = _phases(range(length), range(size), length, -1)
        m = torch.stack([torch.cat([c, -s], 1), torch.cat([s, c], 1)], 1).reshape(2 * length, 2 * size)
    elif kind == "inverse":
        c, s = _phases(range(start, start + size), range(length), length, 1)
        m = torch.cat([torch.stack([c, -s], 2), torch.stack([s, c], 2)], 0).reshape(2 * size, 2 * length) / length
    else:
        c, s = _phases(range(start, start + size), range(half), length, 1)
        weight = torch.full((half,), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if length % 2 == 0:
            weight[-1] = 1.0
        m = torch.stack([c * weight, -s * weight], 2).reshape(size, 2 * half) / length
    return m


# Kernel spectra and their cache.


def _kernel_spectrum(weight: torch.Tensor, axes) -> torch.Tensor:
    """``(F, 2 out, 2 in)``: per frequency the real form ``[[Wr, -Wi], [Wi, Wr]]`` of the flipped
    kernel's DFT (placed at ``0..k-1``), rows (re/im, out), columns (re/im, in)."""
    cout, cin, k1, k2, k3 = weight.shape
    a1, a2, a3 = axes
    f1 = a1.L // 2 + 1
    mat = functools.partial(_dft_matrix, dtype=weight.dtype, device=weight.device)
    flipped = weight.flip(2, 3, 4).permute(2, 3, 4, 0, 1).reshape(k1, -1)
    s = (mat("real", a1.L, k1, 0) @ flipped).view(f1, 2, k2 * k3 * cout, 1, cin)
    # the second column block is i times the first: (re, im) -> (-im, re)
    s = torch.cat([s, torch.stack([-s[:, 1], s[:, 0]], 1)], 3).view(f1, 2 * k2, -1)
    s = torch.matmul(mat("complex", a2.L, k2, 0), s).view(f1 * a2.L, 2 * k3, -1)
    return torch.matmul(mat("complex", a3.L, k3, 0), s).view(-1, 2 * cout, 2 * cin)


class _SpectrumCache:
    """LRU of kernel spectra bounded in bytes. Entries of a weight that was garbage-collected
    go at the next lookup (its weakref callback only notes the id: it may run anywhere)."""

    def __init__(self, budget: int):
        self.budget, self.entries, self.dead, self.lock = budget, OrderedDict(), [], threading.Lock()

    def get(self, weight: torch.Tensor, axes) -> torch.Tensor:
        try:
            key = (id(weight), weight._version, weight.data_ptr(), axes, weight.device, weight.dtype)
        except RuntimeError:  # an inference tensor has no version counter: do not cache
            return _kernel_spectrum(weight, axes)
        with self.lock:
            while self.dead:
                ident = self.dead.pop()
                for stale in [k for k in self.entries if k[0] == ident]:
                    del self.entries[stale]
            hit = self.entries.get(key)
            if hit is not None and hit[0]() is weight:
                self.entries.move_to_end(key)
                return hit[1]
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor: autograd may save it
            spectrum = _kernel_spectrum(weight, axes)
        with self.lock:
            self.entries[key] = (weakref.ref(weight, functools.partial(self._died, id(weight))), spectrum)
            total = sum(s.numel() * s.element_size() for _, s in self.entries.values())
            while total > self.budget and len(self.entries) > 1:
                _, (_, old) = self.entries.popitem(last=False)
                total -= old.numel() * old.element_size()
        return spectrum

    def _died(self, ident: int, _ref) -> None:
        self.dead.append(ident)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.dead.clear()


_SPECTRA = _SpectrumCache(CACHE_BUDGET)
_WORKSPACE = threading.local()


def clear_caches() -> None:
    """Free the cached kernel spectra and this thread's workspace buffers."""
    _SPECTRA.clear()
    _WORKSPACE.__dict__.clear()


class _Buffers:
    """Where stage outputs go: fresh tensors (autograd, CUDA) or reused CPU workspace slots."""

    def __init__(self, reuse: bool, dtype: torch.dtype, device: torch.device):
        self.reuse, self.dtype, self.device = reuse, dtype, device

    def get(self, slot: int, shape: tuple) -> torch.Tensor | None:
        if not self.reuse:
            return None
        key, numel = (slot, self.dtype), math.prod(shape)
        flat = _WORKSPACE.__dict__.get(key)
        if flat is None or flat.numel() < numel:
            _WORKSPACE.__dict__.pop(key, None)
            with torch.inference_mode(False):  # a normal tensor: usable in and out of inference mode
                flat = _WORKSPACE.__dict__[key] = torch.empty(numel, dtype=self.dtype, device=self.device)
        return flat[:numel].view(shape)

    def matmul(self, slot: int, a: torch.Tensor, b: torch.Tensor, shape: tuple) -> torch.Tensor:
        out = self.get(slot, shape)
        if out is None:
            return (a @ b).view(shape)
        return torch.matmul(a, b, out=out.view(*b.shape[:-2], a.shape[-2], b.shape[-1])).view(shape)

    def copy(self, slot: int, src: torch.Tensor) -> torch.Tensor:
        out = self.get(slot, tuple(src.shape))
        return src.contiguous() if out is None else out.copy_(src)


# The convolution.


def _core(x: torch.Tensor, spectrum: torch.Tensor, bias, axes, cout: int, buffers: _Buffers,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Convolve ``x`` (B, C, D1, D2, D3), already padded so that the blocks of ``axes`` tile it,
    into a channels-last ``(B, out, d nb bs, ...)`` tensor, or (no autograd) into ``out``, a
    ``(B, D1', D2', D3', out)`` view of one."""
    a1, a2, a3 = axes
    batch, cin = x.shape[:2]
    nb1, nb2, nb3 = (a.nb for a in axes)
    d1, d2, d3 = (a.d for a in axes)
    f1 = a1.L // 2 + 1
    p = d1 * d2 * d3 * nb1 * nb2 * nb3 * batch
    mat = functools.partial(_dft_matrix, dtype=x.dtype, device=x.device)
    # gather: (w1, w2, w3, in, P) with P = (r1, r2, r3, b1, b2, b3, batch)
    v = x.view(batch, cin, -1, d1, x.shape[3] // d2, d2, x.shape[4] // d3, d3)
    v = v.unfold(2, a1.w, a1.bs).unfold(4, a2.w, a2.bs).unfold(6, a3.w, a3.bs)
    s = buffers.copy(0, v.permute(8, 9, 10, 1, 3, 5, 7, 2, 4, 6, 0))
    q = cin * p
    # forward transforms: axis 1 real -> (f1, re/im), axes 2 and 3 complex
    s = buffers.matmul(1, mat("real", a1.L, a1.w, 0), s.view(a1.w, -1), (f1, 2 * a2.w, a3.w * q))
    s = buffers.matmul(0, mat("complex", a2.L, a2.w, 0), s, (f1 * a2.L, 2 * a3.w, q))
    s = buffers.matmul(1, mat("complex", a3.L, a3.w, 0), s, (f1 * a2.L * a3.L, 2, cin, p))
    # channel mixing per frequency: [Yr; Yi] = [[Wr, -Wi], [Wi, Wr]] [Xr; Xi]
    y = buffers.get(0, (s.shape[0], 2 * cout, p))
    s = s.view(s.shape[0], 2 * cin, p)
    y = torch.bmm(spectrum, s, out=y) if y is not None else torch.bmm(spectrum, s)
    if bias is not None:
        y[0, :cout] += bias.to(y.dtype)[:, None] * (a1.L * a2.L * a3.L)
    # inverse transforms, keeping only the needed outputs
    q = cout * p
    y = buffers.matmul(1, mat("inverse", a3.L, a3.bs, a3.m0), y.view(f1 * a2.L, 2 * a3.L, q),
                       (f1, 2 * a2.L, a3.bs * q))
    y = buffers.matmul(0, mat("inverse", a2.L, a2.bs, a2.m0), y, (2 * f1, a2.bs * a3.bs * q))
    y = buffers.matmul(1, mat("inverse-real", a1.L, a1.bs, a1.m0), y, (a1.bs * a2.bs * a3.bs * cout, p))
    # scatter in two steps: a 2D transpose to (P, m1, m2, m3, out), then the phase interleave
    y = buffers.copy(0, y.t()).view(d1, d2, d3, nb1, nb2, nb3, batch, a1.bs, a2.bs, a3.bs, cout)
    y = y.permute(6, 3, 7, 0, 4, 8, 1, 5, 9, 2, 10)
    shape = (batch, nb1 * a1.bs * d1, nb2 * a2.bs * d2, nb3 * a3.bs * d3, cout)
    if not buffers.reuse:
        return y.reshape(shape).permute(0, 4, 1, 2, 3)
    if out is None:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
    out.view(y.shape).copy_(y)
    return out.permute(0, 4, 1, 2, 3)


def _chunks(batch: int, axes, channels: int) -> list[int]:
    """Split the batch, then the blocks of axis 1 and 2, until one chunk's largest intermediate
    (the spectrum of its ``channels``) fits ``CHUNK_BUDGET``: (batch, nb1, nb2, nb3) per chunk."""
    sizes = [batch, axes[0].nb, axes[1].nb, axes[2].nb]
    per_item = 8 * channels * _spectrum_size(axes) * math.prod(a.d for a in axes)
    for i in range(4):
        while sizes[i] > 1 and per_item * math.prod(sizes) > CHUNK_BUDGET:
            sizes[i] = -(-sizes[i] // 2)
        if per_item * math.prod(sizes) <= CHUNK_BUDGET:
            break
    return sizes


def fft_conv3d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               dilation: int | tuple[int, int, int] = 1) -> torch.Tensor:
    """``F.conv3d(input, weight, bias, padding=dilation*(k-1)//2, dilation=dilation)`` through the
    transform domain.

    Parameters
    ----------
    input : torch.Tensor
        ``(B, C, D, H, W)``, contiguous or channels-last, any size.
    weight : torch.Tensor
        ``(out, C, k1, k2, k3)`` with odd ``k``.
    bias : torch.Tensor, optional
        ``(out,)``.
    dilation : int or tuple of int
        Per axis or for all three.

    Returns
    -------
    torch.Tensor
        ``(B, out, D, H, W)`` in ``torch.channels_last_3d`` memory format, the input's dtype.
        Differentiable with respect to ``input``, ``weight`` and ``bias``.
    """
    if input.dim() != 5 or weight.dim() != 5 or input.shape[1] != weight.shape[1]:
        raise ValueError(f"expected (B, C, D, H, W) input and (out, C, k, k, k) weight with the same C, "
                         f"got {tuple(input.shape)} and {tuple(weight.shape)}")
    kernel = tuple(weight.shape[2:])
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"fft_conv3d needs odd kernel sizes, got {kernel}")
    dilation = (dilation,) * 3 if isinstance(dilation, int) else tuple(dilation)
    dtype = input.dtype
    compute = torch.promote_types(dtype, torch.float32)
    with torch.autocast(input.device.type, enabled=False):
        x, w = input.to(compute), weight.to(compute)
        b = None if bias is None else bias.to(compute)
        cout, cin = w.shape[:2]
        spatial = tuple(x.shape[2:])
        axes = _plan(spatial, kernel, dilation, cin, cout, x.shape[0])
        recording = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (input, weight, bias))
        spectrum = _kernel_spectrum(w, axes) if recording and weight.requires_grad else _SPECTRA.get(w, axes)
        buffers = _Buffers(not recording and x.device.type == "cpu", compute, x.device)
        # zero padding: none for one block (the transform's own zeros are the halo), h before
        # and up to the end of the last block after for overlap-save
        pads = []
        for a, size in zip(reversed(axes), reversed(spatial)):
            before = 0 if a.nb == 1 else a.d * a.h
            pads += [before, a.d * ((a.nb - 1) * a.bs + a.w) - before - size]
        if any(pads):
            x = F.pad(x, pads)
        sizes = _chunks(x.shape[0], axes, max(cin, cout))
        if sizes == [x.shape[0], *(a.nb for a in axes)]:
            out = _core(x, spectrum, b, axes, cout, buffers)
        else:
            out = _chunked(x, spectrum, b, axes, cout, buffers, sizes)
        out = out[:, :, : spatial[0], : spatial[1], : spatial[2]]
        if not out.is_contiguous(memory_format=torch.channels_last_3d):
            out = out.contiguous(memory_format=torch.channels_last_3d)
    return out.to(dtype)


def _chunked(x, spectrum, bias, axes, cout, buffers, sizes) -> torch.Tensor:
    """:func:`_core` over sub-boxes of ``sizes`` (batch, blocks) written into one output."""
    totals = [x.shape[0], *(a.nb for a in axes)]
    out = x.new_empty((x.shape[0], *(a.nb * a.bs * a.d for a in axes), cout))
    for start in itertools.product(*(range(0, t, s) for t, s in zip(totals, sizes))):
        count = [min(s, t - b) for b, s, t in zip(start, sizes, totals)]
        index = [slice(start[0], start[0] + count[0]), slice(None)]
        target = [slice(start[0], start[0] + count[0])]
        for a, b, c in zip(axes, start[1:], count[1:]):
            index.append(slice(a.d * b * a.bs, a.d * ((b + c - 1) * a.bs + a.w)))
            target.append(slice(a.d * b * a.bs, a.d * (b + c) * a.bs))
        sub = tuple(a._replace(nb=c) for a, c in zip(axes, count[1:]))
        if buffers.reuse:
            _core(x[tuple(index)], spectrum, bias, sub, cout, buffers, out[tuple(target)])
        else:
            out[tuple(target)] = _core(x[tuple(index)], spectrum, bias, sub, cout, buffers).permute(0, 2, 3, 4, 1)
    return out.permute(0, 4, 1, 2, 3)


# The module and the engine switch.


class FFTConv3d(nn.Conv3d):
    """An ``nn.Conv3d`` (same parameters and state_dict) that convolves through :func:`fft_conv3d`.

    Only stride 1, groups 1, zero 'same' padding (``dilation * (k - 1) // 2``) and odd kernels
    are supported; :func:`set_conv_engine` converts eligible ``nn.Conv3d`` modules in place.
    ``engine`` is ``"fft"`` (always) or ``"auto"`` (per input size, see :meth:`uses_fft`).
    """

    engine = "fft"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not _eligible(self):
            raise ValueError(f"FFTConv3d needs stride 1, groups 1, zero 'same' padding and odd kernels: {self}")
        training = (input.device.type == "cpu" and torch.is_grad_enabled()
                    and (input.requires_grad or self.weight.requires_grad))
        if self.engine == "auto" and not self.uses_fft(tuple(input.shape), training):
            return super().forward(input)
        return fft_conv3d(input, self.weight, self.bias, self.dilation)

    def uses_fft(self, input_shape: tuple, training: bool = False) -> bool:
        """Whether this layer convolves an input of ``input_shape`` (B, C, D, H, W) through the
        transform domain (always for ``engine == "fft"``); ``training``: autograd records it on a
        CPU, where every kernel of ``TRAINING_KERNEL`` voxels or more goes there."""
        if self.engine == "fft" or (training and math.prod(self.kernel_size) >= TRAINING_KERNEL):
            return True
        shape = (input_shape[0], *input_shape[2:])
        return _fft_wins(shape, self.in_channels, self.out_channels, self.kernel_size, self.dilation)


def _eligible(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv3d)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and all(s == 1 for s in conv.stride)
        and all(k % 2 == 1 for k in conv.kernel_size)
        and (conv.padding == "same"
             or tuple(conv.padding) == tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation)))
    )


@functools.lru_cache(maxsize=1024)
def _fft_wins(shape: tuple, cin: int, cout: int, kernel: tuple, dilation: tuple) -> bool:
    """The "auto" rule: the transform domain when the direct multiply-adds exceed ``AUTO_RATIO``
    times the transform-domain :func:`_cost` plus ``OVERHEAD_COST`` for an input of ``shape``
    (B, D, H, W)."""
    batch, spatial = shape[0], shape[1:]
    direct = math.prod(kernel) * cin * cout * math.prod(spatial) * batch
    fft = _cost(_plan(spatial, kernel, dilation, cin, cout, batch), cin, cout, batch) + OVERHEAD_COST
    return direct > AUTO_RATIO * fft


def set_conv_engine(model: nn.Module, engine: str) -> nn.Module:
    """Switch every eligible ``nn.Conv3d`` of ``model`` to ``engine``, in place, and return ``model``.

    ``"fft"`` and ``"auto"`` turn them into :class:`FFTConv3d` (by changing their class: the
    parameters, buffers and state_dict stay the same objects); ``"direct"`` turns them back
    into plain ``nn.Conv3d``.

    Raises
    ------
    ValueError
        ``engine`` is not an :class:`~napari_medsynth.core.choices.Engine`.
    """
    if engine not in tuple(Engine):
        raise ValueError(f"engine must be one of {', '.join(Engine)}, got {engine!r}")
    for module in model.modules():
        if type(module) in (nn.Conv3d, FFTConv3d) and _eligible(module):
            if engine == "direct":
                module.__class__ = nn.Conv3d
                module.__dict__.pop("engine", None)
            else:
                module.__class__ = FFTConv3d
                module.engine = engine
    return model


def conv_engines(model: nn.Module, input_shape: tuple | None = None, training: bool = False) -> list[str]:
    """The engine of each ``nn.Conv3d`` of ``model``, in module order: ``"direct"``, ``"fft"`` or
    ``"auto"``; with ``input_shape`` (B, C, D, H, W) of the convolutions' input (the batch and
    spatial size: channels are each layer's own), ``"auto"`` layers report the engine they pick
    for it (``"fft"`` or ``"direct"``), in CPU training with ``training``."""
    engines = []
    for module in model.modules():
        if isinstance(module, FFTConv3d):
            if module.engine == "auto" and input_shape is not None:
                engines.append("fft" if module.uses_fft(tuple(input_shape), training) else "direct")
            else:
                engines.append(module.engine)
        elif isinstance(module, nn.Conv3d):
            engines.append("direct")
    return engines
