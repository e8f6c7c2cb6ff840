"""Words for people: the summaries the CLI prints, how a fit ended, PSNR as text.

Every function here takes metadata (a store's, a palette's, :meth:`bigquant.Store.info`) and
returns text; nothing here reads files or prints. Only the CLI and the preview use it.
"""

from __future__ import annotations

import math
from typing import Any

from .chunking import format_bytes
from .params import INERTIA_PATIENCE, PIXEL_GAIN_PER_TOL

#: How a run ended (``stopped_by`` in the metadata), in words.
_STOPS = {
    "shift": "converged: centroids settled",
    "inertia": "converged: inertia stalled",
    "gain": "converged: next update gains too little",
    "max_iter": "stopped at max_iter",
    "fixed codebook": "fixed codebook",
}


def run_state(meta: dict) -> str:
    """How the fit recorded in ``meta`` ended, in words: ``"converged: centroids settled"``,
    ``"converged: inertia stalled"``, ``"stopped at max_iter"``, ``"fixed codebook"``
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


#: Iterations whose PSNR gain the stop explanation quotes.
RECENT = 10


def psnr_gain(inertias: list[float]) -> tuple[float, float] | None:
    """``(gained, more)`` in dB from a Lloyd inertia history: what the last :data:`RECENT`
    iterations gained, and about what the iterations after them would add.

    PSNR moves as ``-10 log10`` of the error, so an iteration's gain is ``10 log10`` of the
    ratio of two inertias. Gains in a Lloyd tail shrink roughly geometrically: ``more`` sums that
    series at the rate seen over the recent iterations (the last gain times ``r / (1 - r)``), or,
    where the gains do not shrink, counts another :data:`RECENT` iterations of the latest gain.
    None with fewer than three positive inertias.
    """
    values = [float(v) for v in inertias if v is not None and float(v) > 0][-(RECENT + 1) :]
    if len(values) < 3:
        return None
    gains = [10 * math.log10(a / b) for a, b in zip(values[:-1], values[1:])]
    gained = sum(gains)
    half = len(gains) // 2
    early, late = sum(gains[:half]), sum(gains[half:])
    last = max(gains[-1], 0.0)
    if early > 0 and 0 <= late < early:
        r = (late / early) ** (1.0 / max(len(gains) - half, 1))
        more = last * r / (1 - r) if r < 1 else last * RECENT
    else:
        more = last * RECENT
    return gained, max(more, 0.0)


def stop_line(meta: dict) -> str | None:
    """What the way the fit stopped means for the result, from its recorded histories; None for
    a fixed codebook or a store without histories."""
    how = meta.get("stopped_by")
    shifts = meta.get("shift_history") or []
    if how == "shift" and shifts:
        return f"the codebook settled: no colour moved more than {shifts[-1]:.3g} in the last iteration (--tol)"
    if how == "inertia":
        rtol = float(meta.get("tol", 1e-4)) / 100
        return f"further iterations gain less than {rtol:.0e} of the error each ({INERTIA_PATIENCE} in a row did)"
    if how == "gain":
        rtol = float(meta.get("tol", 1e-4)) * PIXEL_GAIN_PER_TOL
        return f"one more iteration's update would gain less than {rtol:.0e} of the error"
    if how != "max_iter":
        return None
    gain = psnr_gain(meta.get("inertia_history") or [])
    moved = f"the codebook still moved by up to {max(shifts[-RECENT:]):.3g} per iteration" if shifts else ""
    if gain is None:
        return moved or None
    gained, more = gain
    if more < 0.05:
        gains = f"the last iterations gained {gained:.3f} dB: more would change PSNR by about {more:.2g} dB"
        return f"{moved}, but {gains}" if moved else gains
    return (
        f"still improving: the last iterations gained {gained:.2f} dB; a larger --max-iter would add "
        f"about {more:.2g} dB"
    )


def ratio_line(info: dict, input_bytes: int | None = None) -> str:
    """The compression ratio against the raw pixels and, where known, against the input's bytes
    on disk (``input_bytes``, else a recorded ``source_bytes``)."""
    raw, store = info["raw_bytes"], info["store_bytes"]
    text = (
        f"  ratio       {raw / store:.1f}:1 against the raw pixels ({format_bytes(raw)})"
        if store
        else "  ratio       -"
    )
    src = input_bytes if input_bytes is not None else info.get("source_bytes")
    if src and store:
        text += f"; {src / store:.2f}:1 against the input file ({format_bytes(src)})"
    return text


def summary_lines(info: dict, input_bytes: int | None = None) -> list[str]:
    """The lines that describe a store (:meth:`bigquant.Store.info`): size, K, iterations and
    what their stop means, error, bytes and ratios (``input_bytes``: the input file's size on
    disk), time."""
    rows, cols, c = info["shape"]
    # With --target-psnr, K below --max-k is the search's choice (the "auto K" line says so).
    reduced = info["k"] != info.get("k_requested", info["k"]) and info.get("target_psnr") is None
    k_note = f" (reduced from {info['k_requested']}: fewer distinct colours)" if reduced else ""
    stop = stop_line(info)
    return [
        f"  size        {rows} x {cols} x {c} {info['dtype']} ({rows * cols / 1e6:.2f} Mpx)",
        f"  K           {info['k']}{k_note}, method {info['method']}",
        f"  iterations  {info['iterations']} ({run_state(info)})",
        *([f"  stop        {stop}"] if stop else []),
        f"  MSE         {info['mse']:.4g}    PSNR {psnr_text(info['psnr'])} dB",
        f"  store       {format_bytes(info['store_bytes'])} ({info['bits_per_pixel']:.3f} bits/pixel, "
        f"labels {info.get('labels_codec') or 'unknown'})",
        ratio_line(info, input_bytes),
        f"  time        {info.get('time_s', float('nan')):.1f} s",
    ]


def summary_object(info: dict, input_bytes: int | None = None) -> dict:
    """What ``compress --json`` prints: the store's :meth:`bigquant.Store.info` (the keys of
    ``info --json``) plus ``input_bytes``, the input's bytes on disk (None for an array), and
    ``input_ratio``, the input's bytes over the store's (None where either is unknown)."""
    store = info.get("store_bytes")
    ratio = input_bytes / store if input_bytes and store else None
    return {**info, "input_bytes": input_bytes, "input_ratio": ratio}


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
        *([f"  stop        {stop}"] if (stop := stop_line(meta)) else []),
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
        f"  fixed-width {info['seed_bits']:,} bits = N·⌈log2 K⌉ + bits·K ({format_bytes(info['seed_bits'] / 8)}, "
        f"{100 * info['seed_ratio']:.1f} % of raw): labels at ⌈log2 K⌉ bits each plus the codebook, "
        "without entropy coding",
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
        passes = (
            f"{lo} to {hi} passes over the image (sample, coreset and labels, then any exact Lloyd passes "
            f"and the labels again; say {typical})"
        )
        when = f"about {_seconds(t_typ)} ({_seconds(t_lo)} to {_seconds(t_hi)}; {est['pass_s']:.2g} s an exact pass)"
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
