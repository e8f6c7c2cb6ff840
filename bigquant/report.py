"""Words for people: the summaries the CLI prints, how a fit ended, PSNR as text.

Every function here takes metadata (a store's, a palette's, :meth:`bigquant.Store.info`) and
returns text; nothing here reads files or prints. Only the CLI and the preview use it.
"""

from __future__ import annotations

import math
from typing import Any

from .chunking import format_bytes

#: How a run ended (``stopped_by`` in the metadata), in words.
_STOPS = {
    "shift": "converged: centroids settled",
    "inertia": "converged: inertia stalled",
    "max_iter": "not converged: max_iter reached",
    "fixed codebook": "fixed codebook",
}


def run_state(meta: dict) -> str:
    """How the fit recorded in ``meta`` ended, in words: ``"converged: centroids settled"``,
    ``"converged: inertia stalled"``, ``"not converged: max_iter reached"``, ``"fixed codebook"``
    (stores written before ``stopped_by`` was recorded: ``"converged"`` or ``"not converged"``)."""
    return _STOPS.get(str(meta.get("stopped_by")), "converged" if meta.get("converged") else "not converged")


def is_lossless(psnr: Any) -> bool:
    """True for the PSNR of a lossless reconstruction: ``inf``, as a float or as stored (``"inf"``)."""
    return psnr == "inf" or (isinstance(psnr, float) and math.isinf(psnr))


def psnr_text(psnr: Any, digits: int = 2) -> str:
    """A PSNR in dB as text, ``"31.23"``; ``"inf"`` for a lossless one (or None, an unknown one)."""
    if psnr is None or is_lossless(psnr):
        return "inf"
    return f"{float(psnr):.{digits}f}"


def psnr_caption(psnr: Any) -> str:
    """A PSNR for a picture's title: ``"PSNR 31.2 dB"``, ``"lossless"`` or ``"PSNR unknown"``."""
    if psnr is None:
        return "PSNR unknown"
    if is_lossless(psnr):
        return "lossless"
    return f"PSNR {psnr_text(psnr, 1)} dB"


def summary_lines(info: dict) -> list[str]:
    """The lines that describe a store (:meth:`bigquant.Store.info`): size, K, iterations,
    error, bytes, time."""
    rows, cols, c = info["shape"]
    # With --target-psnr, K below --max-k is the search's choice (the "auto K" line says so).
    reduced = info["k"] != info.get("k_requested", info["k"]) and info.get("target_psnr") is None
    k_note = f" (reduced from {info['k_requested']}: fewer distinct colours)" if reduced else ""
    return [
        f"  size        {rows} x {cols} x {c} {info['dtype']} ({rows * cols / 1e6:.2f} Mpx)",
        f"  K           {info['k']}{k_note}, method {info['method']}",
        f"  iterations  {info['iterations']} ({run_state(info)})",
        f"  MSE         {info['mse']:.4g}    PSNR {psnr_text(info['psnr'])} dB",
        f"  store       {format_bytes(info['store_bytes'])} ({info['bits_per_pixel']:.3f} bits/pixel, "
        f"labels {info.get('labels_codec') or 'unknown'}); "
        f"raw {format_bytes(info['raw_bytes'])}; ratio {info['ratio']:.1f}:1",
        f"  time        {info.get('time_s', float('nan')):.1f} s",
    ]


def auto_k_line(info: dict, target_psnr: float) -> str:
    """The line that says which K ``--target-psnr`` chose and what it reached."""
    return (
        f"  auto K      chose K={info['k']} for a target of {target_psnr:g} dB "
        f"(estimate: {info['auto_k_estimate']}); got {psnr_text(info['psnr'])} dB"
    )


def fit_lines(path: Any, meta: dict) -> list[str]:
    """What ``bigquant fit`` prints about the palette it wrote at ``path``."""
    return [
        f"wrote palette {path}",
        f"  K           {meta['k']} across {len(meta['sources'])} images, method {meta['method']}",
        f"  iterations  {meta['iterations']} ({run_state(meta)})",
        f"  MSE         {meta['mse']:.4g}    PSNR {psnr_text(meta['psnr'])} dB (all images together)",
        f"  use it      bigquant compress IMAGE --codebook {path}",
    ]


def palette_lines(path: Any, meta: dict) -> list[str]:
    """What ``bigquant info`` prints about a palette."""
    return [
        f"{path}  (bigquant palette, format {meta['format_version']})",
        f"  K           {meta['k']} x {meta['channels']} {meta['dtype']}, fitted across "
        f"{len(meta.get('sources', []))} images, method {meta.get('method')}",
        f"  iterations  {meta.get('iterations')} ({run_state(meta)})",
        f"  MSE         {meta.get('mse', float('nan')):.4g}    PSNR {psnr_text(meta.get('psnr'))} dB",
    ]


def info_lines(info: dict) -> list[str]:
    """What ``bigquant info`` prints about a store (:meth:`bigquant.Store.info`)."""
    where = ""
    if "source_path" in info:
        where = f" ({info['source_format']}, series {info['source_series']}, level {info['source_level']})"
    lines = [
        f"{info['path']}  (bigquant store, format {info['format_version']})",
        *summary_lines(info),
        f"  seeds' bits {info['seed_bits']:,} ({100 * info['seed_ratio']:.1f} % of raw)",
        f"  source      {info.get('source_path', info['source'])}{where}  seed {info['seed']}",
    ]
    if "bands" in info:
        lines.append(f"  pixels      size {pixel_size_text(info.get('pixel_size'))}; bands {', '.join(info['bands'])}")
    return lines


def _shape(shape: Any) -> str:
    return " x ".join(str(int(n)) for n in shape)


def pixel_size_text(size: dict | None) -> str:
    """``"0.499 micrometer"`` (square pixels), ``"0.5 x 0.25 micrometer (y x)"``, or ``"unknown"``."""
    if not size:
        return "unknown"
    y, x, unit = size["y"], size["x"], size["unit"]
    if math.isclose(y, x, rel_tol=1e-9):
        return f"{x:.6g} {unit}"
    return f"{y:.6g} x {x:.6g} {unit} (y x)"


def _tile_text(tile: Any, shape: Any, axes: str) -> str:
    if not tile:
        return "decoded whole"
    width = shape[axes.index("X")] if "X" in axes and len(axes) == len(shape) else None
    if tile[1] == width and tile[0] < shape[axes.index("Y")]:
        return f"strips of {tile[0]} rows"
    return f"tiles {_shape(tile)}"


def series_lines(info: dict) -> list[str]:
    """Every series of an input and its levels, the one read marked ``<- read``."""
    lines = []
    for s in info["all_series"]:
        name = f" {s['name']}" if s["name"] else ""
        role = " (associated image)" if s["associated"] else ""
        lines.append(f"    series {s['index']}{name}{role}, axes {s['axes']}, {s['dtype']}")
        for i, lv in enumerate(s["levels"]):
            read = "  <- read" if (s["index"], i) == (info["series"], info["level"]) else ""
            tile = _tile_text(lv["tile"], lv["shape"], s["axes"])
            lines.append(f"      level {i}  {_shape(lv['shape'])}, {tile}{read}")
    return lines


def _seconds(t: float) -> str:
    return f"{t:.0f} s" if t >= 10 else f"{t:.1f} s"


def estimate_lines(est: dict) -> list[str]:
    """The plan and the estimate of a compress (:meth:`bigquant.planning.Estimate.to_dict`)."""
    lo, typical, hi = est["passes"]
    t_lo, t_typ, t_hi = est["time_s"]
    if lo == hi:
        passes = f"{lo} passes over the image"
        when = f"about {_seconds(t_typ)}"
    else:
        passes = f"{lo} to {hi} passes over the image (one per Lloyd iteration, plus 2; say {typical})"
        when = f"about {_seconds(t_typ)} ({_seconds(t_lo)} to {_seconds(t_hi)}; {est['pass_s']:.2g} s a Lloyd pass)"
    return [
        f"  plan        {est['path']} path, chunks {_shape(est['chunks'])} ({est['n_chunks']} chunk{'s' if est['n_chunks'] != 1 else ''}), "
        f"{est['threads']} threads, memory limit {format_bytes(est['memory_limit'])}",
        f"  estimate    K={est['k']}: {passes}; {when}, peak memory about {format_bytes(est['peak_bytes'])}",
        f"              (read {est['read_ns']:.1f} ns/pixel/thread, {est['read_basis']}; "
        "start-up, passes and fit by a cost model: see docs/cli.md#info)",
    ]


def input_lines(info: dict, est: dict | None = None) -> list[str]:
    """What ``bigquant info INPUT`` prints about an image (:meth:`bigquant.io.ImageInfo.to_dict`)
    and, if given, the plan and estimate of its compress."""
    rows, cols, c = info["shape"]
    lines = [
        f"{info['path']}  ({info['format_name']}; {info['detail']}; {format_bytes(info['file_bytes'])})",
        f"  image       {rows} x {cols} x {c} {info['dtype']} ({rows * cols / 1e6:.2f} Mpx): "
        f"series {info['series']}, level {info['level']}, axes {info['axes']}",
        f"  storage     {_tile_text(info['tile'], info['shape'][:2], 'YX')}, compression {info['compression']}",
        f"  pixel size  {pixel_size_text(info['pixel_size'])}",
        f"  bands       {', '.join(info['bands'])}",
        "  contents",
        *series_lines(info),
    ]
    return lines + (estimate_lines(est) if est else [])
