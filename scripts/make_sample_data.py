"""Generate the bundled sample data in ``data/01_raw``: DQMIO files, labels, truth and legacy CSVs.

Everything is synthetic but shaped like 2018 ZeroBias per-lumisection (LS) DQM data, and written
with ROOT itself through ``dqm_playground_ds.tools.dqmio_writer`` so the ``.root`` files are genuine
DQMIO (one tree per ME type, ``Indices``, run-level MEs with ``Lumi == 0``, a ``Type == 1000`` row).

What is written (see ``data/README.md`` for the full inventory)::

    <out>/dqmio/ZeroBias_Run2018A_DQMIO_R<run>_LS<first>-<last>[_ci].root
    <out>/labels/golden.json        certified-good LS (Run Registry format)
    <out>/labels/dcs_on.json        LS with the detector on (golden is a subset)
    <out>/injected_problems.json    machine-readable truth of every injected problem
    <out>/legacy_csv/ZeroBias_2018A_DataFrame_{1D,2D}_sample.csv   legacy ML4DQM CSV format

The model behind the numbers:

* five invented runs in four LHC fills; the instantaneous luminosity decays exponentially along a
  fill, so the number of entries per LS drops within a run; every bin is Poisson-fluctuated around
  an expectation (a fixed per-run template times the LS's expected entries);
* pixel cluster charge (TH1F, Landau convolved with a Gaussian, per-layer MPV 21-24 ke), strip
  on-track S/N in TIB (TH1F, Landau peak near 25), number of on-track barrel clusters per event
  (TH1D, gamma distribution whose mean follows the pile-up) and two z-phi cluster-position maps
  (TH2F) built from the barrel geometry: 8 modules in z, 12 or 28 overlapping ladders in phi, more
  occupancy near z = 0, module-to-module efficiency spread, a few permanently dead modules / chips;
* the first LS of every run are a ramp-up with very few entries (DCS off); one LS (the last one of
  run 315420) has no MEs at all; training runs are clean apart from the ramp-up;
* two runs (315322, split over two files, and the short CI run 315420) get injected problems: dead
  region and hot spot in a map, shifted charge peak, shifted and broadened strip S/N.
* ``fEntries`` is the number of fills, i.e. the sum of ALL bins including under/overflow (as ROOT
  counts it); only the S/N, charge and cluster-count histograms have a (small) overflow.

Runs 315357 (clean) and 315420 (problems) form the CI subset: their files end in ``_ci.root``
(glob ``dqmio/*_ci.root``). The label JSONs cover all runs, so they serve the CI subset as well.

The output is byte-identical from one run to the next: fixed seed, GUIDs derived from the seed and
the file name, and ROOT's ``?reproducible`` file option (fixed file UUID and timestamps). Takes about
ten seconds.

Usage::

    pip install -e ".[root]"
    python scripts/make_sample_data.py [--out data/01_raw]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

SEED = 20180417
LS_SECONDS = 2**18 * 3564 * 24.95e-9  # 2^18 LHC orbits = 23.31 s
LUMI_LIFETIME_H = 9.0  # exponential decay time of the instantaneous luminosity along a fill
PILEUP_PER_1E34 = 29.0  # <PU> per 1e34 cm^-2 s^-1 (2018: ~55 at 1.9e34)

PX = "PixelPhase1/Tracks/PXBarrel"
CHARGE = {layer: f"{PX}/charge_PXLayer_{layer}" for layer in (1, 2, 3, 4)}
SN = "SiStrip/MechanicalView/TIB/Summary_ClusterStoNCorr__OnTrack__TIB"
NCLUS = "PixelPhase1/Tracks/num_clusters_ontrack_PXBarrel"
ZPHI = {layer: f"{PX}/clusterposition_zphi_ontrack_PXLayer_{layer}" for layer in (1, 2)}

CHARGE_AXIS = (100, 0.0, 80000.0)
SN_AXIS = (100, 0.0, 100.0)
NCLUS_AXIS = (100, 0.0, 5000.0)
Z_AXIS = (48, -26.7, 26.7)  # 8 modules of 6.675 cm, 6 bins each
PHI_AXIS = (56, -np.pi, np.pi)  # 2 bins per ladder in layer 2 (28 ladders), 4.67 in layer 1 (12)

# per layer: (MPV [e], Landau width [e], Gaussian smearing [e], entries per LS per 1e34)
CHARGE_SHAPE = {
    1: (21000.0, 1900.0, 2400.0, 4300.0),
    2: (22500.0, 2000.0, 2200.0, 4100.0),
    3: (23500.0, 2000.0, 2100.0, 3900.0),
    4: (24200.0, 2050.0, 2100.0, 3700.0),
}
SN_SHAPE = (25.0, 1.7, 2.6, 45000.0)  # MPV, Landau width, Gaussian smearing, entries per 1e34
NCLUS_PER_PU, NCLUS_CV, ZB_EVENTS_PER_LS = 55.0, 1.3, 1400.0
# per layer: ladders, z0 of the z profile [cm], beam-spot phi modulation, entries per LS per 1e34
MAP_SHAPE = {1: (12, 9.0, 0.05, 60000.0), 2: (28, 15.0, 0.03, 70000.0)}
# permanently dead modules (ladder, module) and readout chips (ladder, module, phi half, roc range)
DEAD_MODULES = {1: ((2, 1), (7, 5), (10, 3)), 2: ((5, 6), (13, 2), (21, 4))}
DEAD_ROCS = {1: ((4, 4, 1, (0, 3)),), 2: ((17, 0, 0, (0, 7)), (25, 3, 1, (4, 7)))}
RAMP_FRACTIONS = (0.002, 0.007, 0.02, 0.05)  # entries fraction of the last ramp-up LS, ... earlier

CLS_CODE = {"TH1F": 3, "TH1D": 5, "TH2F": 6}


@dataclass(frozen=True)
class RunSpec:
    run: int
    n_ls: int
    start: datetime  # start of the run (UTC)
    fill_start: datetime  # start of stable beams of the fill
    peak_lumi: float  # instantaneous luminosity at the start of the fill, 1e34 cm^-2 s^-1
    ramp_ls: int  # LS 1..ramp_ls: detector ramping up, very few entries, DCS off
    files: tuple[tuple[int, int], ...]  # LS ranges of the DQMIO files holding this run
    role: str
    ci: bool = False
    empty_ls: tuple[int, ...] = ()  # LS without any ME (Indices row with Type == 1000), DCS off


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


RUNS = (
    RunSpec(315257, 160, _utc("2018-04-17 20:15:00"), _utc("2018-04-17 20:00:00"), 1.95, 3,
            ((1, 160),), "training (clean)"),
    RunSpec(315264, 150, _utc("2018-04-18 01:00:00"), _utc("2018-04-17 20:00:00"), 1.95, 2,
            ((1, 150),), "training (clean)"),
    RunSpec(315322, 190, _utc("2018-04-18 16:00:00"), _utc("2018-04-18 14:00:00"), 1.80, 4,
            ((1, 95), (96, 190)), "test (injected problems)"),
    RunSpec(315357, 36, _utc("2018-04-19 15:30:00"), _utc("2018-04-19 10:00:00"), 1.70, 2,
            ((1, 36),), "CI training (clean)", ci=True),
    RunSpec(315420, 40, _utc("2018-04-20 13:36:00"), _utc("2018-04-20 08:00:00"), 1.72, 3,
            ((1, 40),), "CI test (injected problems)", ci=True, empty_ls=(40,)),
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    run: int
    first: int
    last: int
    me: str  # full ME path, "*" = every ME of the LS
    kind: str  # dead_region | hot_spot | shift | sn_shift | low_stats
    shift: float = 0.0  # shift / sn_shift: peak moved by this much (axis units)
    broaden: float = 1.0  # sn_shift: Gaussian smearing multiplied by this
    xbins: tuple[int, int] = (0, 0)  # dead_region: 1-based inclusive ROOT bin ranges
    ybins: tuple[int, int] = (0, 0)
    hot: tuple[tuple[int, int, float], ...] = ()  # hot_spot: (x bin, y bin, factor)
    note: str = ""

    def detail(self) -> str:
        short = self.me.rsplit("/", 1)[-1]
        if self.kind == "dead_region":
            (x0, x1), (y0, y1) = self.xbins, self.ybins
            z0, z1 = _edge(Z_AXIS, x0), _edge(Z_AXIS, x1 + 1)
            p0, p1 = _edge(PHI_AXIS, y0), _edge(PHI_AXIS, y1 + 1)
            return (
                f"{short}: x bins {x0}-{x1}, y bins {y0}-{y1} (1-based, z {z0:.2f}..{z1:.2f} cm,"
                f" phi {p0:.2f}..{p1:.2f}) set to 0; {self.note}"
            )
        if self.kind == "hot_spot":
            bins = ", ".join(f"(x {x}, y {y}) x{f:g}" for x, y, f in self.hot)
            return f"{short}: bins {bins} (1-based ROOT bins); {self.note}"
        if self.kind == "shift":
            nbins = self.shift / _width(CHARGE_AXIS)
            return f"{short}: peak shifted by {nbins:+g} bins ({self.shift:+g} e); {self.note}"
        if self.kind == "sn_shift":
            return (
                f"{short}: S/N peak shifted by {self.shift:+g} ({self.shift / _width(SN_AXIS):+g}"
                f" bins) and Gaussian smearing x{self.broaden:g}; {self.note}"
            )
        return self.note


def _width(axis: tuple[int, float, float]) -> float:
    return (axis[2] - axis[1]) / axis[0]


def _edge(axis: tuple[int, float, float], ibin: int) -> float:
    """Low edge of 1-based bin ``ibin``."""
    return axis[1] + (ibin - 1) * _width(axis)


PROBLEMS = (
    # run 315322: the long test run, split over two files at LS 95/96
    Problem(315322, 40, 54, ZPHI[1], "dead_region", xbins=(31, 42), ybins=(12, 25),
            note="two modules in z x three ladders lose HV (power-group trip)"),
    Problem(315322, 88, 101, CHARGE[3], "shift", shift=4 * _width(CHARGE_AXIS),
            note="wrong gain calibration; the block spans both files of the run"),
    Problem(315322, 130, 141, SN, "sn_shift", shift=-4.0, broaden=1.5,
            note="TIB timing/latency mis-set: lower and wider S/N"),
    Problem(315322, 160, 167, ZPHI[2], "hot_spot",
            hot=((22, 35, 4.0), (23, 35, 4.0), (22, 36, 3.0), (23, 36, 5.0)),
            note="noisy readout chip"),
    # run 315420: the short CI test run
    Problem(315420, 9, 14, ZPHI[1], "hot_spot", hot=((20, 45, 5.0), (21, 45, 3.5), (20, 46, 3.0)),
            note="noisy readout chip"),
    Problem(315420, 18, 25, CHARGE[2], "shift", shift=-3 * _width(CHARGE_AXIS),
            note="wrong gain calibration"),
    Problem(315420, 29, 36, ZPHI[2], "dead_region", xbins=(1, 24), ybins=(39, 46),
            note="a readout sector (half a shell in z x four ladders) drops out"),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# templates: expected bin probabilities WITH flow bins
# ----------------------------------------------------------------------------------------------
_HERMITE = np.polynomial.hermite_e.hermegauss(40)
_LANDAU_MODE = -0.42931  # mode of scipy's standard Landau density


def _landau_gauss_cdf(x: np.ndarray, mpv: float, xi: float, sigma: float) -> np.ndarray:
    """CDF of a Landau (most probable value ``mpv``, width ``xi``) convolved with a Gaussian."""
    nodes, weights = _HERMITE
    loc = mpv - _LANDAU_MODE * xi
    cdf = stats.landau.cdf(x[:, None] - sigma * nodes[None, :], loc=loc, scale=xi)
    return cdf @ weights / np.sqrt(2 * np.pi)


def _binned(
    cdf: Callable[[np.ndarray], np.ndarray], axis: tuple[int, float, float], cut: float
) -> np.ndarray:
    """Bin probabilities (underflow, bins..., overflow) of a distribution cut below ``cut``."""
    edges = np.linspace(axis[1], axis[2], axis[0] + 1)
    below = float(cdf(np.array([cut]))[0])
    c = np.maximum(cdf(edges), below)
    probs = np.concatenate([[c[0] - below], np.diff(c), [1.0 - c[-1]]])
    return np.clip(probs, 0.0, None) / (1.0 - below)


def charge_template(layer: int, mpv_scale: float, shift: float = 0.0) -> np.ndarray:
    """Cluster charge: 95 % Landau x Gaussian + 5 % low-charge shoulder, all moved by ``shift``."""
    mpv, xi, sigma, _ = CHARGE_SHAPE[layer]
    threshold = 1500.0  # no cluster below the readout threshold

    def cdf(x: np.ndarray) -> np.ndarray:
        x = x - shift
        shoulder = stats.gamma.cdf(x, 3.0, scale=3000.0)  # clusters cut at module / ROC edges
        return 0.95 * _landau_gauss_cdf(x, mpv * mpv_scale, xi, sigma) + 0.05 * shoulder

    return _binned(cdf, CHARGE_AXIS, cut=threshold + shift)


def sn_template(scale: float, shift: float = 0.0, broaden: float = 1.0) -> np.ndarray:
    mpv, xi, sigma, _ = SN_SHAPE

    def cdf(x: np.ndarray) -> np.ndarray:
        return _landau_gauss_cdf(x, mpv * scale + shift, xi, sigma * broaden)

    return _binned(cdf, SN_AXIS, cut=5.0)  # clusters need S/N > 5


def nclus_template(pileup: float) -> np.ndarray:
    mean = NCLUS_PER_PU * pileup
    shape = pileup / (1 + NCLUS_CV**2)  # sum over Poisson(PU) interactions of clusters per vertex
    return _binned(lambda x: stats.gamma.cdf(x, shape, scale=mean / shape), NCLUS_AXIS, cut=0.0)


def map_template(layer: int, rng: np.random.Generator, bs_phase: float) -> np.ndarray:
    """z-phi occupancy probabilities of one barrel layer, shape (ny + 2, nx + 2), flow bins = 0."""
    n_ladders, z0, bs_amp, _ = MAP_SHAPE[layer]
    nx, (x_lo, x_hi), ny = Z_AXIS[0], Z_AXIS[1:], PHI_AXIS[0]
    over = 8
    z = x_lo + (np.arange(nx * over) + 0.5) * (x_hi - x_lo) / (nx * over)
    phi = -np.pi + (np.arange(ny * over) + 0.5) * 2 * np.pi / (ny * over)
    module = np.clip(((z - x_lo) / (x_hi - x_lo) * 8).astype(int), 0, 7)
    roc = np.clip(((z - x_lo) / (x_hi - x_lo) * 64).astype(int) % 8, 0, 7)
    step = 2 * np.pi / n_ladders
    efficiency = np.clip(1 + 0.05 * rng.standard_normal((n_ladders, 8)), 0.8, 1.15)
    for ladder, mod in DEAD_MODULES[layer]:
        efficiency[ladder, mod] = 0.0
    coverage = np.zeros((phi.size, z.size))
    for ladder in range(n_ladders):
        centre = -np.pi + (ladder + 0.5) * step + 0.1 * step
        dphi = np.angle(np.exp(1j * (phi - centre)))
        on = np.abs(dphi) < 0.56 * step  # neighbouring ladders overlap by 12 %
        weight = (1.0 + 0.04 * (-1) ** ladder) * efficiency[ladder, module][None, :]
        weight = np.broadcast_to(weight, coverage.shape).copy()
        for lad, mod, half, (r0, r1) in DEAD_ROCS[layer]:
            if lad == ladder:
                in_half = (dphi >= 0) if half else (dphi < 0)
                weight[np.ix_(in_half, (module == mod) & (roc >= r0) & (roc <= r1))] = 0.0
        coverage += on[:, None] * weight
    profile = 1.0 / (1.0 + (z / z0) ** 2)
    beamspot = 1.0 + bs_amp * np.cos(phi - bs_phase)
    density = coverage * profile[None, :] * beamspot[:, None]
    binned = density.reshape(ny, over, nx, over).sum(axis=(1, 3))
    probs = np.zeros((ny + 2, nx + 2))
    probs[1:-1, 1:-1] = binned / binned.sum()
    return probs


# ----------------------------------------------------------------------------------------------
# per-LS generation
# ----------------------------------------------------------------------------------------------
@dataclass
class LumiData:
    run: int
    lumi: int
    begin: int  # edm::Timestamp value: (unix seconds << 32) | microseconds
    end: int
    mes: dict[str, np.ndarray]  # name -> values WITH flow bins


def _timestamp(t: float) -> int:
    seconds = int(t)
    return (seconds << 32) | round((t - seconds) * 1e6)


def generate_run(spec: RunSpec) -> list[LumiData]:
    """All LS of one run; problems of the run replace the template of their ME in their LS."""
    rng = np.random.default_rng([SEED, spec.run])
    # per-run templates (probabilities): small run-to-run calibration and beam-spot differences
    charge_scale = {layer: 1 + 0.005 * rng.standard_normal() for layer in CHARGE}
    sn_scale = 1 + 0.01 * rng.standard_normal()
    bs_phase = 0.8 + 0.3 * rng.standard_normal()
    templates = {
        name: charge_template(layer, charge_scale[layer]) for layer, name in CHARGE.items()
    }
    templates[SN] = sn_template(sn_scale)
    for layer, name in ZPHI.items():
        templates[name] = map_template(layer, np.random.default_rng([SEED, layer]), bs_phase)
    per_1e34 = {name: CHARGE_SHAPE[layer][3] for layer, name in CHARGE.items()}
    per_1e34 |= {SN: SN_SHAPE[3]} | {name: MAP_SHAPE[layer][3] for layer, name in ZPHI.items()}

    # problem templates: shifts keep the entries, a dead region loses them, a hot spot adds some
    special: list[tuple[Problem, np.ndarray]] = []
    for p in (p for p in PROBLEMS if p.run == spec.run):
        if p.kind == "shift":
            layer = next(k for k, v in CHARGE.items() if v == p.me)
            special.append((p, charge_template(layer, charge_scale[layer], shift=p.shift)))
        elif p.kind == "sn_shift":
            special.append((p, sn_template(sn_scale, shift=p.shift, broaden=p.broaden)))
        elif p.kind == "dead_region":
            t = templates[p.me].copy()
            t[p.ybins[0] : p.ybins[1] + 1, p.xbins[0] : p.xbins[1] + 1] = 0.0
            special.append((p, t))
        elif p.kind == "hot_spot":
            t = templates[p.me].copy()
            for x, y, factor in p.hot:
                if t[y, x] <= 0:
                    raise ValueError(f"hot spot on an empty bin: {p}")
                t[y, x] *= factor
            special.append((p, t))

    start = spec.start.timestamp()
    fill_offset_h = (spec.start - spec.fill_start).total_seconds() / 3600
    lumis = []
    for lumi in range(1, spec.n_ls + 1):
        t0 = start + (lumi - 1) * LS_SECONDS
        begin, end = _timestamp(t0), _timestamp(t0 + LS_SECONDS)
        if lumi in spec.empty_ls:
            lumis.append(LumiData(spec.run, lumi, begin, end, {}))
            continue
        t_h = fill_offset_h + (lumi - 0.5) * LS_SECONDS / 3600
        inst = spec.peak_lumi * np.exp(-t_h / LUMI_LIFETIME_H)
        jitter = 1 + 0.01 * rng.standard_normal()  # deadtime / rate fluctuations
        ramp = 1.0
        if lumi <= spec.ramp_ls:
            ramp = RAMP_FRACTIONS[len(RAMP_FRACTIONS) - 1 - (spec.ramp_ls - lumi)]
        expected = {
            name: t * per_1e34[name] * inst * jitter * ramp for name, t in templates.items()
        }
        # ZeroBias: ~constant event rate, clusters per event follow the pile-up
        expected[NCLUS] = nclus_template(PILEUP_PER_1E34 * inst) * ZB_EVENTS_PER_LS * jitter * ramp
        for p, t in special:
            if p.first <= lumi <= p.last:
                expected[p.me] = t * per_1e34[p.me] * inst * jitter * ramp
        mes = {name: rng.poisson(expected[name]).astype(np.float64) for name in sorted(expected)}
        lumis.append(LumiData(spec.run, lumi, begin, end, mes))
    return lumis


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------
Axis = tuple[int, float, float]
ME_INFO: dict[str, tuple[str, Axis, Axis | None, str]] = {}  # name -> class, x, y, title
for _layer, _name in CHARGE.items():
    _title = f"Corrected Cluster Charge (OnTrack) PXLayer {_layer};Charge (electrons);#Entries"
    ME_INFO[_name] = ("TH1F", CHARGE_AXIS, None, _title)
ME_INFO[SN] = ("TH1F", SN_AXIS, None, "Summary_ClusterStoNCorr__OnTrack__TIB;S/N;#Entries")
_title = "Number of Clusters (on Track) PXBarrel;Number of Clusters;#Events"
ME_INFO[NCLUS] = ("TH1D", NCLUS_AXIS, None, _title)
for _layer, _name in ZPHI.items():
    _title = f"Cluster Position (OnTrack) PXLayer {_layer};Global Z (cm);Global #phi"
    ME_INFO[_name] = ("TH2F", Z_AXIS, PHI_AXIS, _title)
RUN_LEVEL_ME = CHARGE[1]


def _me(name: str, values: np.ndarray) -> Any:
    from dqm_playground_ds.tools.dqmio_writer import MonitorElement

    cls, x, y, title = ME_INFO[name]
    return MonitorElement(name, cls, x, values, y=y, entries=float(values.sum()), title=title)


def _guid(name: str) -> str:
    digest = hashlib.sha256(f"dqm-playground-ds/{SEED}/{name}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4)).upper()


def file_name(spec: RunSpec, first: int, last: int) -> str:
    suffix = "_ci" if spec.ci else ""
    return f"ZeroBias_Run2018A_DQMIO_R{spec.run}_LS{first:04d}-{last:04d}{suffix}.root"


def write_run_files(spec: RunSpec, lumis: list[LumiData], folder: Path) -> list[Path]:
    """One DQMIO file per LS range; each ends with the run-level ME integrated over its LS."""
    from dqm_playground_ds.tools.dqmio_writer import LumiBlock, write_dqmio

    paths = []
    for first, last in spec.files:
        chunk = [d for d in lumis if first <= d.lumi <= last]
        blocks = [
            LumiBlock(d.run, d.lumi, [_me(n, v) for n, v in d.mes.items()], d.begin, d.end)
            for d in chunk
        ]
        integrated = sum(d.mes[RUN_LEVEL_ME] for d in chunk if d.mes)
        blocks.append(
            LumiBlock(spec.run, 0, [_me(RUN_LEVEL_ME, integrated)], chunk[0].begin, chunk[-1].end)
        )
        path = folder / file_name(spec, first, last)
        # ROOT's "reproducible" option fixes the file UUID, timestamps and stored name, so the
        # files are byte-identical from one run of this script to the next
        reproducible = f"{path}?reproducible={path.name}"
        write_dqmio(reproducible, blocks, guid=_guid(path.name), compression=505)
        paths.append(path)
    return paths


def ranges(lumis: list[int]) -> list[list[int]]:
    """Merge sorted LS numbers into 1-based inclusive [first, last] ranges."""
    out: list[list[int]] = []
    for lumi in sorted(lumis):
        if out and lumi == out[-1][1] + 1:
            out[-1][1] = lumi
        else:
            out.append([lumi, lumi])
    return out


def low_stats_problems() -> list[Problem]:
    return [
        Problem(
            spec.run,
            1,
            spec.ramp_ls,
            "*",
            "low_stats",
            note=f"detector ramp-up at the start of the run: every ME has "
            f"{RAMP_FRACTIONS[-spec.ramp_ls]:.1%}..{RAMP_FRACTIONS[-1]:.0%} of the "
            f"usual entries; DCS off",
        )
        for spec in RUNS
    ]


def all_problems() -> list[Problem]:
    return sorted([*PROBLEMS, *low_stats_problems()], key=lambda p: (p.run, p.first, p.me))


def label_sets() -> tuple[dict[str, list[list[int]]], dict[str, list[list[int]]]]:
    golden, dcs = {}, {}
    problems = all_problems()
    for spec in RUNS:
        on = [ls for ls in range(spec.ramp_ls + 1, spec.n_ls + 1) if ls not in spec.empty_ls]
        bad = {ls for p in problems if p.run == spec.run for ls in range(p.first, p.last + 1)}
        dcs[str(spec.run)] = ranges(on)
        golden[str(spec.run)] = ranges([ls for ls in on if ls not in bad])
    return golden, dcs


def write_json_mask(path: Path, mask: dict[str, list[list[int]]]) -> None:
    lines = [f'  "{run}": {json.dumps(r)}' for run, r in mask.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def write_problems(path: Path) -> None:
    """A JSON list, one problem per line."""
    rows = [
        json.dumps(
            {
                "run": p.run,
                "lumis": [p.first, p.last],
                "me": p.me,
                "kind": p.kind,
                "detail": p.detail(),
            }
        )
        for p in all_problems()
    ]
    path.write_text("[\n  " + ",\n  ".join(rows) + "\n]\n")


def _histo_text(values: np.ndarray) -> str:
    return "[" + ", ".join(str(int(v)) for v in values.reshape(-1)) + "]"


def write_legacy_csv(path: Path, name: str, lumis: list[LumiData]) -> None:
    """Legacy ML4DQM DataFrame CSV: short hname, histo WITH flow bins (2D y-major), fEntries."""
    cls, (nx, x_lo, x_hi), yaxis, _ = ME_INFO[name]
    ybins, ymin, ymax = yaxis if yaxis is not None else (1, 0, 1)
    short = name.rsplit("/", 1)[-1]
    header = "fromrun,fromlumi,hname,fromrun,fromlumi,metype,hname,histo,entries,Xmax,Xmin,Xbins"
    header += ",Ymax,Ymin,Ybins"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header.split(","))
        for d in lumis:
            values = d.mes[name]
            key = [d.run, d.lumi, short]
            histo = _histo_text(values)
            axes = [float(x_hi), float(x_lo), nx, ymax, ymin, ybins]
            writer.writerow([*key, *key[:2], CLS_CODE[cls], short, histo, int(values.sum()), *axes])


def summary(paths: list[Path], data: dict[int, list[LumiData]]) -> str:
    lines = ["| file | run | LS | size (kB) |", "|---|---|---|---|"]
    for path in paths:
        run, lo, hi = re.search(r"_R(\d+)_LS(\d+)-(\d+)", path.name).groups()  # type: ignore[union-attr]
        lines.append(
            f"| `{path.name}` | {run} | {int(lo)}-{int(hi)} | {path.stat().st_size / 1024:.0f} |"
        )
    lines += [
        "",
        "| run | LS | role | ramp-up (DCS off) | entries charge_PXLayer_1 (LS after ramp) |",
        "|---|---|---|---|---|",
    ]
    for spec in RUNS:
        counts = [d.mes[CHARGE[1]].sum() for d in data[spec.run] if d.mes]
        lines.append(
            f"| {spec.run} | 1-{spec.n_ls} | {spec.role} | 1-{spec.ramp_ls} | "
            f"{counts[spec.ramp_ls]:.0f} -> {counts[-1]:.0f} |"
        )
    lines += ["", "| run | LS | kind | ME | detail |", "|---|---|---|---|---|"]
    for p in all_problems():
        lines.append(
            f"| {p.run} | {p.first}-{p.last} | {p.kind} | `{p.me.rsplit('/', 1)[-1]}` | "
            f"{p.detail()} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("data/01_raw"), help="output folder")
    args = parser.parse_args(argv)
    try:
        import dqm_playground_ds.tools.dqmio_writer  # noqa: F401
    except ImportError:  # not installed: use the source tree next to this script
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    tic = time.perf_counter()
    out: Path = args.out
    for sub in ("dqmio", "labels", "legacy_csv"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for old in (out / "dqmio").glob("ZeroBias_Run2018A_DQMIO_*.root"):
        old.unlink()  # file names encode LS ranges: do not leave stale ones behind

    data = {spec.run: generate_run(spec) for spec in RUNS}
    paths = []
    for spec in RUNS:
        paths += write_run_files(spec, data[spec.run], out / "dqmio")

    golden, dcs = label_sets()
    write_json_mask(out / "labels" / "golden.json", golden)
    write_json_mask(out / "labels" / "dcs_on.json", dcs)
    write_problems(out / "injected_problems.json")
    write_legacy_csv(
        out / "legacy_csv" / "ZeroBias_2018A_DataFrame_1D_sample.csv",
        SN,
        [d for d in data[315322] if 101 <= d.lumi <= 150],
    )
    write_legacy_csv(
        out / "legacy_csv" / "ZeroBias_2018A_DataFrame_2D_sample.csv",
        ZPHI[1],
        [d for d in data[315322] if 52 <= d.lumi <= 56],
    )
    print(summary(paths, data))
    print(f"\nwrote {out} in {time.perf_counter() - tic:.1f} s")


if __name__ == "__main__":
    main()
