"""Writes the 2048 x 2048 images `make bench` decodes (fx-tui bench --task input): one per format
fx reads, with the structure of a radiograph (smooth gradient + noise), 16 bit where the format
allows. Not fixtures: regenerated on demand, never committed.

usage: python3 scripts/make_bench_images.py OUT_DIR
"""
import os
import sys

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, generate_uid)

N = 2048


def base(bits):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:N, 0:N] / N
    img = 0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y) + 0.05 * rng.standard_normal((N, N))
    return (np.clip(img, 0, 1) * (2 ** bits - 1)).astype(np.uint16 if bits > 8 else np.uint8)


def dicom(path, pixels, bits, syntax, data=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    # compress() starts from an uncompressed dataset.
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if syntax == JPEG2000Lossless else syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "DX", N, N
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.WindowCenter, ds.WindowWidth = 2 ** (bits - 1), 2 ** bits
    if syntax == ExplicitVRLittleEndian:
        ds.PixelData = pixels.tobytes()
    elif syntax == JPEG2000Lossless:
        ds.PixelData = pixels.tobytes()
        ds.compress(JPEG2000Lossless)
    else:
        ds.PixelData = encapsulate([data])
        ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def main(out):
    os.makedirs(out, exist_ok=True)
    p12, p8 = base(12), base(8)
    dicom(f"{out}/dicom_u12_uncompressed.dcm", p12, 12, ExplicitVRLittleEndian)
    import io
    buf = io.BytesIO()
    Image.fromarray(p8).save(buf, format="JPEG", quality=95)
    dicom(f"{out}/dicom_u8_jpeg_baseline.dcm", p8, 8, JPEGBaseline8Bit, buf.getvalue())
    dicom(f"{out}/dicom_u12_jpeg2000_lossless.dcm", p12, 12, JPEG2000Lossless)
    sitk.WriteImage(sitk.GetImageFromArray(p12.astype(np.int16)), f"{out}/metaimage_s16.mha")
    Image.fromarray(p12 * 16).save(f"{out}/png_u16.png")
    Image.fromarray(p8).save(f"{out}/jpeg_u8.jpg", quality=95)
    print(f"wrote 6 images of {N}x{N} to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench-images")
