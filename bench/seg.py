"""SEG encoding of a 3-class consensus over a 512x512x300 CT: radlabel.seg.encode vs a plain highdicom call.

Our encoder is highdicom with the protocol's codes and provenance; the ratio shows its overhead.
Both outputs must decode back to the masks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, timed  # noqa: E402

from radlabel import seg  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402
from radlabel.protocol import load_template  # noqa: E402

TEMPLATE = Path(__file__).resolve().parent.parent / "protocol_templates" / "ct-liver-lesions.yaml"


def main() -> None:
    args = bench_args(__doc__)
    study = make_ct_study(seed=9, slices=args.slices, noise_hu=0)
    protocol = load_template(TEMPLATE)
    masks = {"liver": study.labelmap == 4, "liver_lesion": study.labelmap == 6, "liver_cyst": study.labelmap == 7}

    def ours():
        return seg.encode(study.datasets, masks, protocol, series_description="bench")

    def plain():
        descriptions = [hd.seg.SegmentDescription(n, name, codes.SCT.Tissue, codes.SCT.Tissue,
                                                  hd.seg.SegmentAlgorithmTypeValues.MANUAL)
                        for n, name in enumerate(masks, 1)]
        return hd.seg.Segmentation(study.datasets, np.stack(list(masks.values()), -1).astype(np.uint8),
                                   hd.seg.SegmentationTypeValues.BINARY, descriptions, generate_uid(), 1,
                                   generate_uid(), 1, "x", "x", "1", "1", omit_empty_frames=True)

    decoded = {s.label: s.mask for s in seg.decode(ours(), [str(d.SOPInstanceUID) for d in study.datasets])}
    assert all(np.array_equal(decoded[name], mask) for name, mask in masks.items())
    plain()
    ours_t, theirs_t = [], []
    for _ in range(args.runs):
        ours_t.append(timed(ours))
        theirs_t.append(timed(plain))
    report("seg_encode_3_segments", ours_t, theirs_t, "radlabel_seg", "plain_highdicom", slices=args.slices,
           round_trip_exact=True)


if __name__ == "__main__":
    main()
