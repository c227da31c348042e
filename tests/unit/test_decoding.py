"""Every common transfer syntax decodes to modality values through the one frame reader."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from connectors.samples import SHARED_CT
from radlabel.dicom_files import read_dicom_files
from radlabel.ingest.series import frame_pixels, frames_of
from radlabel.ingest.validate import Reason, validate_series

BASE = os.path.dirname(get_testdata_file("CT_small.dcm"))
SYNTAXES = {
    "CT_small.dcm": "1.2.840.10008.1.2.1",  # explicit little endian
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",  # deflate
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "SC_rgb_jpeg_dcmtk.dcm": "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "SC_rgb_jpeg_gdcm.dcm": "1.2.840.10008.1.2.4.70",  # JPEG lossless
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",
}


@pytest.mark.parametrize("name", sorted(SYNTAXES))
def test_transfer_syntax_decodes(name):
    ds = pydicom.dcmread(os.path.join(BASE, name))
    assert ds.file_meta.TransferSyntaxUID == SYNTAXES[name]
    values = frame_pixels(frames_of(ds)[0])
    assert values.shape[:2] == (ds.Rows, ds.Columns) and np.ptp(values) > 0


def test_the_real_jpeg2000_lossless_ct_decodes_to_hounsfield_units():
    datasets = read_dicom_files([SHARED_CT / "dicom"])
    values = frame_pixels(frames_of(datasets[10])[0])
    assert values.min() < -900 and values.max() > 300


def test_an_undecodable_jpeg_is_quarantined():
    broken = pydicom.dcmread(os.path.join(BASE, "JPEG-lossy.dcm"))  # a malformed JPEG stream
    report, _ = validate_series([broken])
    assert Reason.UNDECODABLE_PIXELS.value in report.reasons
