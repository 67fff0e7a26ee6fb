#!/usr/bin/env python3
"""Generate small image-decoder fixtures and independent reference pixel values for fx.

Writes (relative to the repository root) fixtures/images/: small NON-square (40 wide x 32 high)
DICOM / MetaImage / JSRT raw / PNG / JPEG files, plus fixtures/images/expected.json with the
reference normalised pixels for every case. The folder is deleted and recreated on every run.

The reference values are computed ONLY with pydicom / SimpleITK / Pillow / numpy, by reading the
written files back (never from the arrays used to build them), following the published standards:

DICOM (frame 0 only for multi-frame):
  1. stored values = pydicom `ds.pixel_array` (BitsStored masking, PixelRepresentation sign)
  2. Modality LUT   = pydicom.pixels.apply_modality_lut(arr, ds) (RescaleSlope/Intercept)
  3. window:
     "dicom"      VOI LUT Sequence present -> pydicom apply_voi_lut(prefer_lut=True) / (2^n - 1),
                  n = LUT Descriptor[2]; else WindowCenter/Width (first value) -> DICOM PS3.3
                  C.11.2.1.2.1 LINEAR into [0,1] (asserted equal to pydicom apply_windowing rescaled
                  from its [y_min, y_max]); else min-max.
     "minmax"     (x - min) / (max - min), 0 everywhere if max == min
     "percentile" lo, hi = numpy.percentile(x, 0.5 / 99.5) (linear), clip((x - lo)/(hi - lo), 0, 1)
  4. MONOCHROME1 -> y = 1 - y
MetaImage (SimpleITK): min-max of the stored values.
JSRT raw (headerless, big-endian 16-bit words, 12-bit values): 1 - v/4095 (invert) or v/4095.
PNG: 8-bit gray v/255, 16-bit gray v/65535, RGB/palette Pillow convert("L")/255 (ITU-R 601-2 luma).
JPEG: Pillow decode, gray /255, colour convert("L")/255.

expected.json: {"generator": {versions}, "convention": {...}, "cases": [...]}; each case has
"name", "file", "format" and either "width", "height", "pixels" (row-major, height x width, rounded
to 6 decimals) [+ "window", "transfer_syntax", "frames", "warning", "tolerance", "invert", "endian"]
or "error" (lower-case substring that the decoder's error message must contain).
Default tolerance is 1/255.

Deterministic (fixed seeds, fixed UIDs), idempotent, self-checking. Run:
    python3 scripts/make_image_fixtures.py
Requires: pydicom numpy SimpleITK pillow pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg
python-gdcm pyjpegls (optional encoders are skipped with a printed note if missing).
"""

import copy
import io
import json
import platform
import shutil
import sys
import uuid
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
import PIL
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "images"
W, H = 40, 32  # columns, rows

DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage


def optional_import(name):
    try:
        return __import__(name)
    except Exception as e:  # noqa: BLE001
        print(f"note: {name} not importable ({e})")
        return None


gdcm = optional_import("gdcm")
jpeg_ls = optional_import("jpeg_ls")
openjpeg = optional_import("openjpeg")
libjpeg = optional_import("libjpeg")
pylibjpeg = optional_import("pylibjpeg")


def versions():
    v = {
        "script": "scripts/make_image_fixtures.py",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "Pillow": PIL.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    if pylibjpeg:
        v["pylibjpeg"] = pylibjpeg.__version__
    if openjpeg:
        v["pylibjpeg-openjpeg"] = openjpeg.__version__
    if libjpeg:
        v["pylibjpeg-libjpeg"] = libjpeg.__version__
    if gdcm:
        v["python-gdcm"] = gdcm.Version.GetVersion()
    if jpeg_ls:
        v["pyjpegls"] = getattr(jpeg_ls, "__version__", "unknown")
    return v


def fixed_uid(name):
    """Deterministic UID under the UUID-derived 2.25 root (PS3.5 B.2)."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "fx-image-fixtures/" + name).int)


IMPLEMENTATION_UID = fixed_uid("implementation")


# ----------------------------------------------------------------------------------------------
# deterministic content
# ----------------------------------------------------------------------------------------------
def pattern(seed, h=H, w=W):
    """Float image in [0, 1]: gradient + texture + seeded noise; exact 0 and 1 present."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    g = 0.55 * xx / (w - 1) + 0.30 * yy / (h - 1)
    g += 0.15 * (0.5 + 0.5 * np.sin(xx / 3.0 + seed) * np.cos(yy / 5.0))
    v = np.clip(g + rng.normal(0.0, 0.04, (h, w)), 0.0, 1.0)
    v[0, 0] = 0.0
    v[-1, -1] = 1.0
    return v


def quant(v, maxval):
    return np.round(v * maxval).astype(np.int64)


def rgb_pattern(seed, h=H, w=W):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * xx / (w - 1)
    g = 255 * yy / (h - 1)
    b = 127.5 + 127.5 * np.sin(xx / 4.0) * np.cos(yy / 3.0)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# reference normalisation
# ----------------------------------------------------------------------------------------------
def minmax(x):
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def percentile_window(x):
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, 0.5), np.percentile(x, 99.5)
    if hi == lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def first_value(v):
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return float(v[0])
    return float(v)


def linear_window(x, c, w):
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR, output range [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    lo = c - 0.5 - (w - 1) / 2
    hi = c - 0.5 + (w - 1) / 2
    y = (x - (c - 0.5)) / (w - 1) + 0.5
    y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, y))
    return y


NOTES = []  # surprising things, printed at the end


def dicom_reference(path, window):
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    assert arr.shape == (ds.Rows, ds.Columns), (path, arr.shape)
    x = apply_modality_lut(arr, ds)
    info = {"frames": frames, "ts": str(ds.file_meta.TransferSyntaxUID), "stored": arr}
    if window == "dicom":
        if ds.get("VOILUTSequence"):
            bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            y = apply_voi_lut(x, ds, prefer_lut=True).astype(np.float64) / (2**bits - 1)
            # independent check of pydicom's VOI LUT against PS3.3 C.11.2.1.1 by hand
            desc = [int(v) for v in ds.VOILUTSequence[0].LUTDescriptor]
            lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
            n = desc[0] or 65536
            idx = np.clip(np.asarray(x, dtype=np.int64) - desc[1], 0, n - 1)
            assert np.array_equal(lut[idx] / (2**bits - 1), y), "VOI LUT mismatch"
            info["voi"] = "lut"
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            c, w = first_value(ds.WindowCenter), first_value(ds.WindowWidth)
            y = linear_window(x, c, w)
            # pydicom's apply_windowing maps to [y_min, y_max]; get them with two probes
            probe = np.concatenate([np.asarray(x, np.float64).ravel(), [-1e12, 1e12]])
            p = apply_windowing(probe, ds)
            ymin, ymax = p[-2], p[-1]
            pyd = ((p[:-2] - ymin) / (ymax - ymin)).reshape(y.shape)
            err = float(np.abs(pyd - y).max())
            assert err < 1e-9, f"LINEAR formula differs from pydicom apply_windowing by {err}"
            info["voi"] = f"linear c={c} w={w} (pydicom range [{ymin}, {ymax}], max diff {err:.1e})"
        else:
            y = minmax(x)
            info["voi"] = "none -> minmax"
    elif window == "minmax":
        y = minmax(x)
    elif window == "percentile":
        y = percentile_window(x)
    else:
        raise ValueError(window)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1.0 - y
    return y, info


# ----------------------------------------------------------------------------------------------
# case bookkeeping
# ----------------------------------------------------------------------------------------------
CASES = []


def add_pixel_case(name, file, fmt, y, **extra):
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == (H, W), (name, y.shape)
    assert np.all(np.isfinite(y)) and y.min() >= 0.0 and y.max() <= 1.0, name
    px = [round(float(v), 6) for v in y.ravel()]
    assert len(px) == W * H
    case = {"name": name, "file": file, "format": fmt}
    case.update(extra)
    case.update({"width": W, "height": H, "pixels": px})
    CASES.append(case)


def add_error_case(name, file, fmt, error, **extra):
    assert error == error.lower()
    case = {"name": name, "file": file, "format": fmt, "error": error}
    case.update(extra)
    CASES.append(case)


# ----------------------------------------------------------------------------------------------
# DICOM
# ----------------------------------------------------------------------------------------------
def build_ds(name, stored, bits_alloc, bits_stored, pixel_rep, photometric="MONOCHROME2",
             sop_class=DX_PRESENTATION, modality="DX", extra=None):
    """Native (uncompressed) Explicit VR Little Endian dataset. `stored` is (H,W) or (F,H,W)."""
    stored = np.asarray(stored, dtype=np.int64)
    frames = stored.shape[0] if stored.ndim == 3 else 1
    sop_uid = fixed_uid("sop/" + name)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "FX_FIXTURES_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"  # else GDCM fills in the current time
    ds.Modality = modality
    ds.PatientName = "Fixture^FX"
    ds.PatientID = "FX-" + name
    ds.StudyInstanceUID = fixed_uid("study")
    ds.SeriesInstanceUID = fixed_uid("series/" + name)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = H
    ds.Columns = W
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = pixel_rep
    for k, v in (extra or {}).items():
        setattr(ds, k, v)

    lo = -(2 ** (bits_stored - 1)) if pixel_rep else 0
    hi = 2 ** (bits_stored - 1) - 1 if pixel_rep else 2**bits_stored - 1
    assert stored.min() >= lo and stored.max() <= hi, (name, stored.min(), stored.max())
    if bits_alloc == 16:
        # two's complement in the low BitsStored bits; bits above HighBit left 0 (not
        # sign-extended) so that a decoder must mask + sign-extend per BitsStored.
        words = (stored & (2**bits_stored - 1)).astype("<u2")
        ds.PixelData = words.tobytes()
        ds["PixelData"].VR = "OW"
    elif bits_alloc == 8:
        ds.PixelData = (stored & 0xFF).astype("u1").tobytes()
        ds["PixelData"].VR = "OB"
    else:
        raise ValueError(bits_alloc)
    return ds


def save_ds(ds, file):
    ts = ds.file_meta.TransferSyntaxUID
    pydicom.dcmwrite(OUT / file, ds, enforce_file_format=True,
                     implicit_vr=ts == ImplicitVRLittleEndian,
                     little_endian=ts != ExplicitVRBigEndian)


def with_ts(ds, ts):
    d = copy.deepcopy(ds)
    d.file_meta.TransferSyntaxUID = ts
    if ts == ExplicitVRBigEndian and d.BitsAllocated == 16:
        # pydicom does not byte-swap OW data itself (documented in dcmwrite)
        d.PixelData = np.frombuffer(d.PixelData, "<u2").astype(">u2").tobytes()
    return d


def dicom_case(name, file, window, expect_stored=None, exact=True, **extra):
    y, info = dicom_reference(OUT / file, window)
    if expect_stored is not None:
        s = np.asarray(expect_stored)
        s0 = s[0] if s.ndim == 3 else s
        if exact:
            assert np.array_equal(info["stored"].astype(np.int64), s0), f"{name}: decode != source"
        else:
            d = np.abs(info["stored"].astype(np.int64) - s0)
            print(f"  {name}: lossy, max |decoded - source| = {d.max()} (mean {d.mean():.2f})")
    fields = {"window": window, "transfer_syntax": info["ts"]}
    if info["frames"] > 1:
        fields.update({"frames": info["frames"], "warning": "multi-frame"})
    fields.update(extra)
    add_pixel_case(name, file, "dicom", y, **fields)
    print(f"  {name:32s} {file:34s} {window:10s} {info.get('voi', '')}")
    return info


def cross_check_sitk(file, expect_modality):
    """Informational: read the DICOM with SimpleITK/GDCM and compare with pydicom's modality output."""
    try:
        img = sitk.ReadImage(str(OUT / file))
        a = sitk.GetArrayFromImage(img).astype(np.float64)
        if a.ndim == 3:
            a = a[0]
        d = float(np.abs(a - expect_modality).max())
        if d > 1e-6:
            NOTES.append(f"SimpleITK/GDCM reads {file} differently from pydicom (max diff {d})")
    except Exception as e:  # noqa: BLE001
        NOTES.append(f"SimpleITK/GDCM could not read {file}: {str(e).splitlines()[0][:100]}")


def make_dicom():
    print("DICOM:")
    # --- base 12-bit unsigned image, Explicit VR LE, with window -------------------------------
    s12 = quant(pattern(1), 4095)
    win = {"WindowCenter": "1800", "WindowWidth": "2400"}
    base = build_ds("u12", s12, 16, 12, 0, extra=win)
    save_ds(base, "dx_u12_explicit_le.dcm")
    for w in ("dicom", "minmax", "percentile"):
        dicom_case(f"dicom_u12_explicit_le_{w}", "dx_u12_explicit_le.dcm", w, s12)
    cross_check_sitk("dx_u12_explicit_le.dcm", s12)

    for ts, file in [(ImplicitVRLittleEndian, "dx_u12_implicit_le.dcm"),
                     (ExplicitVRBigEndian, "dx_u12_explicit_be.dcm"),
                     (DeflatedExplicitVRLittleEndian, "dx_u12_deflated.dcm")]:
        save_ds(with_ts(base, ts), file)
        dicom_case("dicom_u12_" + file[7:-4], file, "dicom", s12)
        cross_check_sitk(file, s12)
    raw = (OUT / "dx_u12_explicit_be.dcm").read_bytes()
    assert np.asarray(s12, ">u2").tobytes() in raw, "big-endian pixel words not found in file"

    # --- RLE Lossless (pydicom native encoder) -------------------------------------------------
    d = copy.deepcopy(base)
    d.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    save_ds(d, "dx_u12_rle.dcm")
    dicom_case("dicom_u12_rle", "dx_u12_rle.dcm", "dicom", s12)

    # --- JPEG Baseline 8-bit (Pillow encoder, pydicom encapsulation) ---------------------------
    s8 = quant(pattern(2), 255)
    buf = io.BytesIO()
    Image.fromarray(s8.astype(np.uint8)).save(buf, format="JPEG", quality=95)
    jpg = buf.getvalue()
    d = build_ds("jpeg_baseline", s8, 8, 8, 0, sop_class=SC_STORAGE, modality="OT",
                 extra={"WindowCenter": "128", "WindowWidth": "256",
                        "LossyImageCompression": "01", "LossyImageCompressionMethod": "ISO_10918_1"})
    d.ConversionType = "WSD"
    d.PixelData = encapsulate([jpg])
    d["PixelData"].VR = "OB"
    d["PixelData"].is_undefined_length = True
    d.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    save_ds(d, "sc_u8_jpeg_baseline.dcm")
    info = dicom_case("dicom_u8_jpeg_baseline", "sc_u8_jpeg_baseline.dcm", "dicom", s8, exact=False,
                      tolerance=round(2 / 255, 6))
    pil = np.asarray(Image.open(io.BytesIO(jpg)), dtype=np.int64)
    dd = int(np.abs(pil - info["stored"]).max())
    print(f"  jpeg baseline: pydicom decode vs Pillow decode of same codestream max diff {dd}")
    if dd:
        NOTES.append(f"JPEG baseline: pydicom's decoder and Pillow differ by up to {dd} grey levels")

    # --- JPEG Lossless Process 14 SV1 (GDCM encoder) -------------------------------------------
    if gdcm is not None:
        src = OUT / "_tmp_u16.dcm"
        s16 = quant(pattern(3), 65535)
        save_ds(build_ds("jpeg_lossless", s16, 16, 16, 0,
                         extra={"WindowCenter": "30000", "WindowWidth": "50000"}), src.name)
        r = gdcm.ImageReader()
        r.SetFileName(str(src))
        assert r.Read()
        ch = gdcm.ImageChangeTransferSyntax()
        ch.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        ch.SetInput(r.GetImage())
        assert ch.Change()
        wr = gdcm.ImageWriter()
        wr.SetFileName(str(OUT / "dx_u16_jpeg_lossless_sv1.dcm"))
        wr.SetFile(r.GetFile())
        wr.SetImage(ch.GetOutput())
        assert wr.Write()
        src.unlink()
        info = dicom_case("dicom_u16_jpeg_lossless_sv1", "dx_u16_jpeg_lossless_sv1.dcm", "dicom", s16)
        assert info["ts"] == JPEGLosslessSV1, info["ts"]
    else:
        print("  SKIP JPEG Lossless SV1: python-gdcm not available")

    # --- JPEG 2000 lossless / lossy (pylibjpeg-openjpeg) ---------------------------------------
    s16b = quant(pattern(4), 65535)
    j2k_base = build_ds("j2k", s16b, 16, 16, 0, extra={"WindowCenter": "32768", "WindowWidth": "40000"})
    try:
        d = copy.deepcopy(j2k_base)
        d.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
        save_ds(d, "dx_u16_j2k_lossless.dcm")
        dicom_case("dicom_u16_j2k_lossless", "dx_u16_j2k_lossless.dcm", "dicom", s16b)
    except Exception as e:  # noqa: BLE001
        print(f"  SKIP JPEG 2000 lossless: {e}")
    try:
        d = copy.deepcopy(j2k_base)
        d.compress(JPEG2000, encoding_plugin="pylibjpeg", generate_instance_uid=False, j2k_cr=[8])
        save_ds(d, "dx_u16_j2k_lossy.dcm")
        dicom_case("dicom_u16_j2k_lossy", "dx_u16_j2k_lossy.dcm", "dicom", s16b, exact=False,
                   tolerance=round(2 / 255, 6))
        if gdcm is not None:
            a = pydicom.pixels.pixel_array(OUT / "dx_u16_j2k_lossy.dcm", decoding_plugin="gdcm")
            b = pydicom.dcmread(OUT / "dx_u16_j2k_lossy.dcm").pixel_array
            dd = int(np.abs(a.astype(np.int64) - b).max())
            print(f"  j2k lossy: gdcm vs default-plugin decode max diff {dd}")
            if dd:
                NOTES.append(f"JPEG 2000 lossy: GDCM and pylibjpeg decodes differ by up to {dd}")
    except Exception as e:  # noqa: BLE001
        print(f"  SKIP JPEG 2000 lossy: {e}")

    # --- JPEG-LS lossless (pyjpegls): error case that also carries pixels ----------------------
    try:
        d = copy.deepcopy(base)
        d.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
        save_ds(d, "dx_u12_jpeg_ls.dcm")
        dicom_case("dicom_u12_jpeg_ls", "dx_u12_jpeg_ls.dcm", "dicom", s12,
                   error=str(JPEGLSLossless))
    except Exception as e:  # noqa: BLE001
        print(f"  SKIP JPEG-LS: {e}")

    # --- MONOCHROME1, 16-bit --------------------------------------------------------------------
    s16m = quant(pattern(5), 65535)
    save_ds(build_ds("mono1", s16m, 16, 16, 0, photometric="MONOCHROME1", modality="CR",
                     sop_class=CR_STORAGE, extra={"WindowCenter": "30000", "WindowWidth": "40000"}),
            "cr_u16_monochrome1.dcm")
    dicom_case("dicom_u16_monochrome1", "cr_u16_monochrome1.dcm", "dicom", s16m)

    # --- signed 16-bit with rescale and multi-valued window -------------------------------------
    ss = quant(pattern(6), 520) + 280  # mostly 280..800 -> HU-like -464..576
    ss[0, 0], ss[-1, -1], ss[0, -1] = -32768, 32767, -5000
    save_ds(build_ds("s16_rescale", ss, 16, 16, 1, modality="CR", sop_class=CR_STORAGE,
                     extra={"RescaleSlope": "2", "RescaleIntercept": "-1024", "RescaleType": "US",
                            "WindowCenter": ["40", "400"], "WindowWidth": ["400", "1500"],
                            "WindowCenterWidthExplanation": ["NARROW", "WIDE"]}),
            "cr_s16_rescale_multiwindow.dcm")
    dicom_case("dicom_s16_rescale_multiwindow", "cr_s16_rescale_multiwindow.dcm", "dicom", ss)
    cross_check_sitk("cr_s16_rescale_multiwindow.dcm", ss * 2.0 - 1024)

    # --- 12-bit signed stored in 16 bits (not sign-extended on disk) ----------------------------
    s12s = quant(pattern(7), 4095) - 2048
    save_ds(build_ds("s12", s12s, 16, 12, 1), "dx_s12_in16.dcm")
    info = dicom_case("dicom_s12_in16_minmax", "dx_s12_in16.dcm", "minmax", s12s)
    assert info["stored"].min() == -2048 and info["stored"].max() == 2047
    cross_check_sitk("dx_s12_in16.dcm", s12s)

    # --- VOI LUT Sequence (non-linear, monotone), plus a window that must NOT be used -----------
    lut = np.round(65535 * (np.arange(4096) / 4095.0) ** 0.5).astype(np.int64)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])  # LUT Descriptor
    item.add_new(0x00283003, "LO", "SQRT GAMMA")  # LUT Explanation
    item.add_new(0x00283006, "US", [int(v) for v in lut])  # LUT Data
    d = build_ds("voi_lut", s12, 16, 12, 0, extra={"WindowCenter": "1000", "WindowWidth": "500"})
    d.VOILUTSequence = Sequence([item])
    save_ds(d, "dx_u12_voi_lut.dcm")
    info = dicom_case("dicom_u12_voi_lut", "dx_u12_voi_lut.dcm", "dicom", s12)

    # --- no window, no VOI LUT -> min-max --------------------------------------------------------
    s12n = quant(pattern(8), 4095) // 2 + 500  # 500..2547: min-max != /4095
    save_ds(build_ds("nowindow", s12n, 16, 12, 0), "dx_u12_no_window.dcm")
    dicom_case("dicom_u12_no_window", "dx_u12_no_window.dcm", "dicom", s12n)

    # --- 8-bit MONOCHROME2 native --------------------------------------------------------------
    s8b = quant(pattern(9), 255)
    save_ds(build_ds("u8", s8b, 8, 8, 0, sop_class=SC_STORAGE, modality="OT",
                     extra={"WindowCenter": "100", "WindowWidth": "150", "ConversionType": "WSD"}),
            "sc_u8_native.dcm")
    dicom_case("dicom_u8_native", "sc_u8_native.dcm", "dicom", s8b)

    # --- multi-frame ----------------------------------------------------------------------------
    mf = np.stack([quant(pattern(10 + i), 4095) for i in range(3)])
    save_ds(build_ds("multiframe", mf, 16, 12, 0, extra=win), "dx_u12_multiframe.dcm")
    ds_mf = pydicom.dcmread(OUT / "dx_u12_multiframe.dcm")
    assert ds_mf.pixel_array.shape == (3, H, W)
    assert np.array_equal(ds_mf.pixel_array, mf)
    dicom_case("dicom_u12_multiframe", "dx_u12_multiframe.dcm", "dicom", mf)

    # --- error cases ------------------------------------------------------------------------------
    good = (OUT / "dx_u12_explicit_le.dcm").read_bytes()
    nbytes = W * H * 2
    assert good.endswith(np.asarray(s12, "<u2").tobytes())
    (OUT / "err_truncated_pixeldata.dcm").write_bytes(good[: len(good) - nbytes // 2])
    add_error_case("dicom_truncated", "err_truncated_pixeldata.dcm", "dicom", "truncat")
    try:
        pydicom.dcmread(OUT / "err_truncated_pixeldata.dcm").pixel_array
        raise AssertionError("pydicom decoded a truncated file")
    except AssertionError:
        raise
    except Exception as e:  # noqa: BLE001
        print(f"  pydicom on truncated file: {type(e).__name__}: {str(e)[:90]}")

    d = copy.deepcopy(base)
    del d.PixelData
    save_ds(d, "err_no_pixeldata.dcm")
    add_error_case("dicom_no_pixeldata", "err_no_pixeldata.dcm", "dicom", "pixeldata")

    rnd = np.random.default_rng(99).integers(0, 256, 1024, dtype=np.uint8).tobytes()
    assert rnd[128:132] != b"DICM"
    (OUT / "err_not_dicom.dcm").write_bytes(rnd)
    add_error_case("dicom_not_dicom", "err_not_dicom.dcm", "dicom", "not a dicom")

    (OUT / "err_empty.dcm").write_bytes(b"")
    add_error_case("dicom_empty", "err_empty.dcm", "dicom", "empty")


# ----------------------------------------------------------------------------------------------
# MetaImage
# ----------------------------------------------------------------------------------------------
def mha_reference(file, expect):
    img = sitk.ReadImage(str(OUT / file))
    assert tuple(img.GetSize()) == (W, H), img.GetSize()
    a = sitk.GetArrayFromImage(img)
    assert a.shape == (H, W)
    assert np.array_equal(a.astype(np.float64), np.asarray(expect, np.float64))
    return minmax(a)


def header_of(file):
    data = (OUT / file).read_bytes()
    end = data.find(b"ElementDataFile")
    end = data.find(b"\n", end) + 1
    return data[:end].decode("ascii")


def make_metaimage():
    print("MetaImage:")
    rng = np.random.default_rng(20)
    u8 = quant(pattern(21), 255).astype(np.uint8)
    u16 = quant(pattern(22), 65535).astype(np.uint16)
    i16 = (quant(pattern(23), 4000) - 3000).astype(np.int16)  # -3000..1000
    f32 = (pattern(24) * 7.5 - 2.25 + rng.normal(0, 1e-3, (H, W))).astype(np.float32)
    u16c = quant(pattern(25), 65535).astype(np.uint16)
    u16r = quant(pattern(26), 4095).astype(np.uint16)
    for arr, file, etype, comp in [(u8, "mha_uchar.mha", "MET_UCHAR", False),
                                   (u16, "mha_ushort.mha", "MET_USHORT", False),
                                   (i16, "mha_short_negative.mha", "MET_SHORT", False),
                                   (f32, "mha_float.mha", "MET_FLOAT", False),
                                   (u16c, "mha_ushort_zlib.mha", "MET_USHORT", True),
                                   (u16r, "mhd_ushort.mhd", "MET_USHORT", False)]:
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((0.175, 0.175))
        sitk.WriteImage(img, str(OUT / file), useCompression=comp)
        hdr = header_of(file)
        assert f"ElementType = {etype}" in hdr, hdr
        assert f"CompressedData = {comp}" in hdr, hdr
        fmt = "mhd" if file.endswith(".mhd") else "mha"
        if fmt == "mhd":
            assert "ElementDataFile = mhd_ushort.raw" in hdr, hdr
            assert (OUT / "mhd_ushort.raw").stat().st_size == W * H * 2
        else:
            assert "ElementDataFile = LOCAL" in hdr, hdr
        add_pixel_case(file.split(".")[0] if fmt == "mha" else "mhd_ushort", file, fmt,
                       mha_reference(file, arr), window="minmax")
        print(f"  {file:30s} {etype:10s} compressed={comp}")

    # hand-written MetaIO header (LOCAL data, little-endian words)
    u16h = quant(pattern(27), 4095).astype(np.uint16)
    hdr = ("ObjectType = Image\n"
           "NDims = 2\n"
           "BinaryData = True\n"
           "BinaryDataByteOrderMSB = False\n"
           "CompressedData = False\n"
           "ElementSpacing = 0.175 0.175\n"
           f"DimSize = {W} {H}\n"
           "ElementType = MET_USHORT\n"
           "ElementDataFile = LOCAL\n")
    (OUT / "mha_handwritten.mha").write_bytes(hdr.encode("ascii") + u16h.astype("<u2").tobytes())
    add_pixel_case("mha_handwritten", "mha_handwritten.mha", "mha",
                   mha_reference("mha_handwritten.mha", u16h), window="minmax")
    print("  mha_handwritten.mha            MET_USHORT LOCAL (by hand)")

    full = (OUT / "mha_ushort.mha").read_bytes()
    (OUT / "err_mha_truncated.mha").write_bytes(full[:-W * 2 * 5])  # 5 rows missing
    add_error_case("mha_truncated", "err_mha_truncated.mha", "mha", "truncat")
    try:
        sitk.ReadImage(str(OUT / "err_mha_truncated.mha"))
        NOTES.append("SimpleITK silently read the truncated .mha")
    except RuntimeError as e:
        print("  SimpleITK on truncated .mha: " + str(e).strip().splitlines()[-1][:100])


# ----------------------------------------------------------------------------------------------
# JSRT raw
# ----------------------------------------------------------------------------------------------
def make_jsrt():
    print("JSRT:")
    for file, seed, invert in [("JPCLN001.IMG", 31, True), ("JPCNN001.IMG", 32, False)]:
        v = quant(pattern(seed), 4095)
        (OUT / file).write_bytes(v.astype(">u2").tobytes())
        back = np.frombuffer((OUT / file).read_bytes(), ">u2").reshape(H, W).astype(np.float64)
        assert back.max() == 4095 and back.min() == 0
        y = 1.0 - back / 4095.0 if invert else back / 4095.0
        add_pixel_case("jsrt_" + file[:-4].lower(), file, "jsrt", y, invert=invert, endian="big")
        print(f"  {file} invert={invert}")
    v = quant(pattern(33), 4095)
    (OUT / "JPCLN002.IMG").write_bytes(v.astype(">u2").tobytes()[: W * H])  # half the bytes
    add_error_case("jsrt_truncated", "JPCLN002.IMG", "jsrt", "truncat",
                   width=W, height=H, invert=True, endian="big")


# ----------------------------------------------------------------------------------------------
# PNG / JPEG
# ----------------------------------------------------------------------------------------------
def luma_check(rgb, L, what):
    rgb = rgb.astype(np.int64)
    ref = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114) / 1000.0
    d = float(np.abs(ref - L.astype(np.float64)).max())
    assert d <= 1.0, (what, d)
    return d


def make_png_jpeg():
    print("PNG/JPEG:")
    tol2 = round(2 / 255, 6)
    g8 = quant(pattern(41), 255).astype(np.uint8)
    Image.fromarray(g8).save(OUT / "png_gray8.png")
    a = np.asarray(Image.open(OUT / "png_gray8.png"))
    assert a.dtype == np.uint8 and np.array_equal(a, g8)
    add_pixel_case("png_gray8", "png_gray8.png", "png", a / 255.0)

    g16 = quant(pattern(42), 65535).astype(np.uint16)
    Image.fromarray(g16).save(OUT / "png_gray16.png")
    raw = (OUT / "png_gray16.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 0, "not a 16-bit grayscale PNG"  # IHDR bit depth/colour
    im = Image.open(OUT / "png_gray16.png")
    a = np.asarray(im).astype(np.int64)
    assert np.array_equal(a, g16), im.mode
    assert a.min() == 0 and a.max() == 65535
    add_pixel_case("png_gray16", "png_gray16.png", "png", a / 65535.0)

    rgb = rgb_pattern(43)
    Image.fromarray(rgb).save(OUT / "png_rgb.png")
    im = Image.open(OUT / "png_rgb.png")
    assert im.mode == "RGB"
    L = np.asarray(im.convert("L"))
    d = luma_check(np.asarray(im), L, "rgb png")
    add_pixel_case("png_rgb", "png_rgb.png", "png", L / 255.0, tolerance=tol2)
    print(f"  RGB PNG: Pillow L vs exact (299,587,114)/1000 luma max diff {d:.3f}")

    rng = np.random.default_rng(44)
    pal = rng.integers(0, 256, (16, 3)).astype(np.uint8)
    pal[0], pal[15] = (0, 0, 0), (255, 255, 255)
    idx = np.clip(np.round(pattern(44) * 15), 0, 15).astype(np.uint8)
    p = Image.new("P", (W, H))
    p.putdata(idx.ravel().tolist())
    p.putpalette(pal.ravel().tolist())
    p.save(OUT / "png_palette.png")
    im = Image.open(OUT / "png_palette.png")
    assert im.mode == "P"
    L = np.asarray(im.convert("L"))
    d = luma_check(pal[idx], L, "palette png")
    add_pixel_case("png_palette", "png_palette.png", "png", L / 255.0, tolerance=tol2)
    print(f"  palette PNG: Pillow L vs exact luma max diff {d:.3f}")

    gj = quant(pattern(45), 255).astype(np.uint8)
    Image.fromarray(gj).save(OUT / "jpeg_gray.jpg", quality=90)
    im = Image.open(OUT / "jpeg_gray.jpg")
    assert im.mode == "L"
    a = np.asarray(im)
    add_pixel_case("jpeg_gray", "jpeg_gray.jpg", "jpeg", a / 255.0, tolerance=tol2)

    cj = rgb_pattern(46)
    Image.fromarray(cj).save(OUT / "jpeg_color.jpg", quality=90)
    im = Image.open(OUT / "jpeg_color.jpg")
    assert im.mode == "RGB"
    L = np.asarray(im.convert("L"))
    add_pixel_case("jpeg_color", "jpeg_color.jpg", "jpeg", L / 255.0, tolerance=tol2)

    full = (OUT / "jpeg_gray.jpg").read_bytes()
    (OUT / "err_truncated.jpg").write_bytes(full[: int(len(full) * 0.6)])
    add_error_case("jpeg_truncated", "err_truncated.jpg", "jpeg", "truncat")
    try:
        Image.open(OUT / "err_truncated.jpg").load()
        NOTES.append("Pillow loaded the truncated JPEG without error")
    except OSError as e:
        print(f"  Pillow on truncated JPEG: {e}")


# ----------------------------------------------------------------------------------------------
def main():
    gen = versions()
    print("generator:", json.dumps(gen))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        make_dicom()
    make_metaimage()
    make_jsrt()
    make_png_jpeg()

    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    for c in CASES:
        assert (OUT / c["file"]).exists(), c["file"]
        if "pixels" in c:
            assert len(c["pixels"]) == c["width"] * c["height"] == W * H
            assert all(0.0 <= v <= 1.0 for v in c["pixels"]), c["name"]

    doc_head = {
        "generator": gen,
        "convention": {
            "output": "grayscale float in [0,1], row-major, height x width, rounded to 6 decimals",
            "default_tolerance": round(1 / 255, 6),
            "dicom": "pixel_array (frame 0) -> apply_modality_lut -> window -> MONOCHROME1 inverts",
            "dicom_window": "VOI LUT Sequence (prefer_lut) / (2^bits-1); else WindowCenter/Width "
                            "(first value) PS3.3 C.11.2.1.2.1 LINEAR into [0,1]; else min-max",
            "percentile": "numpy.percentile 0.5 / 99.5 (linear), clipped",
            "metaimage": "min-max of stored values",
            "jsrt": "big-endian 16-bit words, 12-bit values; 1 - v/4095 if invert else v/4095",
            "png_jpeg": "gray v/(2^bits-1); colour/palette Pillow convert('L') (ITU-R 601-2) / 255",
            "error": "lower-case substring the decoder's error message must contain",
        },
    }
    text = json.dumps(doc_head, indent=1)[:-2] + ',\n "cases": [\n'
    text += ",\n".join("  " + json.dumps(c, separators=(",", ":")) for c in CASES)
    text += "\n ]\n}\n"
    json.loads(text)
    (OUT / "expected.json").write_text(text)

    total = 0
    print("\nfiles:")
    for f in sorted(OUT.iterdir()):
        total += f.stat().st_size
        print(f"  {f.stat().st_size:8d}  {f.name}")
    print(f"  {total:8d}  total ({len(CASES)} cases)")
    assert total < 1_500_000, total
    for n in NOTES:
        print("NOTE:", n)


if __name__ == "__main__":
    sys.exit(main())
