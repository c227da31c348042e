import numpy as np
import pytest

from radlabel.geometry import VolumeGeometry


def test_axial_geometry_is_centred_and_ordered_inferior_to_superior():
    g = VolumeGeometry.axial((10, 4, 6), (0.5, 0.8), 2.0, centre=(1.0, 2.0, 3.0))
    first, last = g.slice_position(0), g.slice_position(9)
    assert last[2] - first[2] == pytest.approx(18.0)
    centre = (np.array(g.index_to_lps((0, 0, 0))) + g.index_to_lps((9, 3, 5))) / 2
    assert centre == pytest.approx([1.0, 2.0, 3.0])
    assert g.spacing == (2.0, 0.5, 0.8)


def test_index_and_lps_round_trip_and_ras_flips_x_y():
    g = VolumeGeometry((10.0, -5.0, 30.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (0.7, 0.9), (1.5, 0.0, 0.0), (5, 6, 7))
    point = g.index_to_lps((2, 3, 4))
    # column i runs along +y (0.9 mm), row j along -z (0.7 mm), slice k along +x (1.5 mm)
    assert point == pytest.approx([10 + 3.0, -5 + 3.6, 30 - 2.1])
    assert g.lps_to_index(point) == pytest.approx([2, 3, 4])
    ras = g.affine_ras() @ np.array([4, 3, 2, 1.0])
    assert ras[:3] == pytest.approx([-point[0], -point[1], point[2]])


def test_voxel_centres_match_affine():
    g = VolumeGeometry.axial((3, 5, 4), (1.0, 2.0), 3.0)
    x, y, z = g.voxel_centres(2)
    assert (x[4, 3], y[4, 3], z[4, 3]) == pytest.approx(tuple(g.index_to_lps((2, 4, 3))))
