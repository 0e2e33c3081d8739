"""Write genuine DQMIO files with ROOT itself, the way CMSSW's ``DQMRootOutputModule`` does.

Used to make the bundled sample data, the test fixtures and the benchmark file. It needs the ``root``
extra (``pip install -e ".[root]"``) and is never imported by the pipeline: readers only need uproot.

The C++ part mirrors ``DQMServices/FwkIO/plugins/DQMRootOutputModule.cc``: one TTree per type code with
branches ``FullName`` (std::string), ``Flags`` (uint32) and ``Value`` (the histogram pointer, split level
0, 128 kB buffer), an ``Indices`` tree with inclusive entry ranges, a ``Type == 1000`` row for a lumi
without MEs, run-level MEs written after the run's lumis with ``Lumi == 0``, and the file GUID.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HIST_CLASSES = {
    "TProfile": 10,
    "TH1F": 3,
    "TH1S": 4,
    "TH1D": 5,
    "TH2F": 6,
    "TH2S": 7,
    "TH2D": 8,
    "TH1I": 12,
    "TH2I": 13,
}
NO_TYPES_STORED = 1000

_CPP = r"""
#include "TFile.h"
#include "TTree.h"
#include "TDirectory.h"
#include "TH1.h"
#include "TH2.h"
#include "TH3.h"
#include "TProfile.h"
#include "TProfile2D.h"
#include <string>
#include <vector>
#include <memory>

namespace dqmpgds {
struct HelperBase {
  bool wasFilled = false; ULong64_t first = 0, last = 0;
  virtual ~HelperBase() {}
  virtual void fillObj(const std::string& name, TObject* obj) = 0;
  void mark() { if (wasFilled) ++last; wasFilled = true; }
  void rangeAndReset(ULong64_t& f, ULong64_t& l) {
    f = first; l = last; wasFilled = false; first = last + 1; last = first;
  }
};
template <class T> struct Helper : HelperBase {
  TTree* tree; std::string* namePtr; uint32_t flags = 0; T* buffer = nullptr;
  Helper(TTree* t, std::string* n) : tree(t), namePtr(n) {
    tree->Branch("FullName", &namePtr);
    tree->Branch("Flags", &flags);
    tree->Branch("Value", &buffer, 128 * 1024, 0);
  }
  void fillObj(const std::string& name, TObject* obj) override {
    *namePtr = name; buffer = dynamic_cast<T*>(obj);
    if (!buffer) throw std::runtime_error("wrong histogram class for tree " + std::string(tree->GetName()));
    tree->Fill(); mark();
  }
};
struct Writer {
  std::unique_ptr<TFile> file; TTree* indices = nullptr;
  std::vector<HelperBase*> helpers; std::vector<TTree*> trees;
  std::string nameBuffer; std::string* namePtr = &nameBuffer;
  unsigned int run = 0, lumi = 0, type = 0, phIndex = 0;
  ULong64_t beginTime = 0, endTime = 0, firstIndex = 0, lastIndex = 0;
  Writer(const char* path, int compression) {
    file.reset(new TFile(path, "RECREATE", "1", compression));
    indices = new TTree("Indices", "Indices");
    indices->Branch("Run", &run); indices->Branch("Lumi", &lumi);
    indices->Branch("ProcessHistoryIndex", &phIndex);
    indices->Branch("BeginTime", &beginTime); indices->Branch("EndTime", &endTime);
    indices->Branch("Type", &type); indices->Branch("FirstIndex", &firstIndex);
    indices->Branch("LastIndex", &lastIndex);
    indices->SetDirectory(file.get());
    const char* names[] = {"Ints","Floats","Strings","TH1Fs","TH1Ss","TH1Ds","TH2Fs","TH2Ss",
                           "TH2Ds","TH3Fs","TProfiles","TProfile2Ds","TH1Is","TH2Is"};
    for (int i = 0; i < 14; ++i) {
      TTree* t = new TTree(names[i], names[i]); t->SetDirectory(file.get()); trees.push_back(t);
      switch (i) {
        case 3: helpers.push_back(new Helper<TH1F>(t, namePtr)); break;
        case 4: helpers.push_back(new Helper<TH1S>(t, namePtr)); break;
        case 5: helpers.push_back(new Helper<TH1D>(t, namePtr)); break;
        case 6: helpers.push_back(new Helper<TH2F>(t, namePtr)); break;
        case 7: helpers.push_back(new Helper<TH2S>(t, namePtr)); break;
        case 8: helpers.push_back(new Helper<TH2D>(t, namePtr)); break;
        case 9: helpers.push_back(new Helper<TH3F>(t, namePtr)); break;
        case 10: helpers.push_back(new Helper<TProfile>(t, namePtr)); break;
        case 11: helpers.push_back(new Helper<TProfile2D>(t, namePtr)); break;
        case 12: helpers.push_back(new Helper<TH1I>(t, namePtr)); break;
        case 13: helpers.push_back(new Helper<TH2I>(t, namePtr)); break;
        default: helpers.push_back(nullptr);
      }
    }
  }
  void fill(int typeCode, const std::string& name, TObject* obj) { helpers.at(typeCode)->fillObj(name, obj); }
  // close one (run, lumi) block: one Indices row per filled type, or a Type=1000 row
  void endBlock(unsigned int r, unsigned int l, ULong64_t b, ULong64_t e, bool isLumi) {
    run = r; lumi = l; beginTime = b; endTime = e; bool stored = false;
    for (size_t i = 0; i < helpers.size(); ++i) {
      if (helpers[i] && helpers[i]->wasFilled) {
        type = i; helpers[i]->rangeAndReset(firstIndex, lastIndex); stored = true; indices->Fill();
      }
    }
    if (!stored && isLumi) { type = 1000; firstIndex = 0; lastIndex = 0; indices->Fill(); }
  }
  void close(const std::string& guid) {
    file->cd();
    std::string g = guid; file->WriteObjectAny(&g, "string", "cms::edm::GUID");
    TDirectory* meta = file->mkdir("MetaData");
    TTree* ph = new TTree("ProcessHistories", "ProcessHistories"); ph->SetDirectory(meta);
    unsigned int idx = 0; std::string pname = "DQM", psid = "", rel = "CMSSW_14_0_0", pass = "";
    ph->Branch("Index", &idx); ph->Branch("ProcessName", &pname); ph->Branch("ParameterSetID", &psid);
    ph->Branch("ReleaseVersion", &rel); ph->Branch("PassID", &pass); ph->Fill();
    TTree* ps = new TTree("ParameterSets", "ParameterSets"); ps->SetDirectory(meta);
    std::string blob = ""; ps->Branch("ParameterSetBlob", &blob);
    file->Write(); file->Close();
    for (auto* h : helpers) delete h;
  }
};
}  // namespace dqmpgds
"""

_ROOT: Any = None


def _root() -> Any:
    """Import ROOT once, compile the writer, and keep ROOT from owning our histograms."""
    global _ROOT  # noqa: PLW0603
    if _ROOT is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import ROOT
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError('writing DQMIO files needs ROOT: pip install -e ".[root]"') from exc
        ROOT.gROOT.SetBatch(True)
        ROOT.TH1.AddDirectory(False)
        ROOT.gInterpreter.Declare(_CPP)
        _ROOT = ROOT
    return _ROOT


@dataclass
class MonitorElement:
    """One histogram of one (run, lumi): ``values`` are bin contents WITH flow bins (ROOT layout).

    For 2D, ``values`` has shape (ny + 2, nx + 2) (ROOT's global bin = x + (nx + 2) * y).
    """

    name: str  # full DQMIO path, e.g. PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1
    cls: str  # TH1F, TH1S, TH1D, TH1I, TH2F, TH2S, TH2D, TH2I
    x: tuple[int, float, float]
    values: np.ndarray
    y: tuple[int, float, float] | None = None
    entries: float | None = None  # fEntries; default: sum of in-range bins
    title: str = ""
    sumw2: bool = False


@dataclass
class LumiBlock:
    run: int
    lumi: int  # 0 = run-level MEs (write them after the run's lumis)
    mes: list[MonitorElement] = field(default_factory=list)
    begin_time: int = 0
    end_time: int = 0


def make_root_histogram(me: MonitorElement) -> Any:
    """Build the ROOT object for a MonitorElement (bin contents set directly, flow bins included)."""
    ROOT = _root()
    if me.cls not in HIST_CLASSES:
        raise ValueError(f"{me.name}: unsupported class {me.cls}")
    short = me.name.rsplit("/", 1)[-1]
    klass = getattr(ROOT, me.cls)
    values = np.asarray(me.values, dtype=np.float64)
    if me.cls == "TProfile":  # bin means: one fill per in-range bin at its centre
        h = klass(short, me.title or short, int(me.x[0]), float(me.x[1]), float(me.x[2]))
        for i, v in enumerate(values.reshape(-1)[1:-1], start=1):
            h.Fill(h.GetXaxis().GetBinCenter(i), float(v))
        return h
    if me.cls.startswith("TH1"):
        h = klass(short, me.title or short, int(me.x[0]), float(me.x[1]), float(me.x[2]))
        flat = values.reshape(-1)
        if flat.size != me.x[0] + 2:
            raise ValueError(f"{me.name}: {flat.size} values for {me.x[0]} bins + 2 flow bins")
    else:
        if me.y is None:
            raise ValueError(f"{me.name}: a 2D histogram needs a y axis")
        nx, ny = int(me.x[0]), int(me.y[0])
        h = klass(
            short,
            me.title or short,
            nx,
            float(me.x[1]),
            float(me.x[2]),
            ny,
            float(me.y[1]),
            float(me.y[2]),
        )
        if values.shape != (ny + 2, nx + 2):
            raise ValueError(f"{me.name}: values shape {values.shape}, expected {(ny + 2, nx + 2)}")
        flat = values.reshape(-1)
    if me.sumw2:
        h.Sumw2()
    h.SetContent(np.ascontiguousarray(flat, dtype=np.float64))
    if me.sumw2:
        h.SetError(np.sqrt(np.abs(np.ascontiguousarray(flat, dtype=np.float64))))
    inner = flat[1:-1] if me.cls.startswith("TH1") else values[1:-1, 1:-1]
    h.SetEntries(float(me.entries) if me.entries is not None else float(inner.sum()))
    return h


class DQMIOWriter:
    """Stream histograms into a DQMIO file block by block (what ``write_dqmio`` does for a list).

    ``fill`` serializes the ROOT object at once, so one object per ME can be refilled and reused
    for every LS (the benchmark writes 100k histograms this way).
    """

    def __init__(
        self, path: str | Path, *, guid: str | None = None, compression: int = 505
    ) -> None:
        ROOT = _root()
        self.guid = guid or str(uuid.uuid4()).upper()
        self._writer = ROOT.dqmpgds.Writer(str(path), int(compression))
        self._closed = False

    def fill(self, cls: str, name: str, hist: Any) -> None:
        self._writer.fill(HIST_CLASSES[cls], name, hist)

    def end_block(self, run: int, lumi: int, begin_time: int = 0, end_time: int = 0) -> None:
        """Close the (run, lumi) block; ``lumi = 0`` holds run-level MEs (write it after the lumis)."""
        self._writer.endBlock(run, lumi, begin_time, end_time, lumi != 0)

    def close(self) -> None:
        if not self._closed:
            self._writer.close(self.guid)
            self._closed = True

    def __enter__(self) -> DQMIOWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_dqmio(
    path: str | Path,
    blocks: Iterable[LumiBlock],
    *,
    guid: str | None = None,
    compression: int = 505,
) -> str:
    """Write ``blocks`` (in file order) to a DQMIO file; return the GUID written.

    ``compression`` is ROOT's algorithm*100+level (505 = ZSTD 5, 101 = ZLIB 1, 404 = LZ4 4).
    Within a block, MEs are written sorted by full name, as the DQMStore emits them.
    """
    with DQMIOWriter(path, guid=guid, compression=compression) as writer:
        for block in blocks:
            ordered: Sequence[MonitorElement] = sorted(block.mes, key=lambda m: m.name)
            keep = []
            for me in ordered:
                h = make_root_histogram(me)
                keep.append(h)
                writer.fill(me.cls, me.name, h)
            writer.end_block(block.run, block.lumi, block.begin_time, block.end_time)
    return writer.guid
