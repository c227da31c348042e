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


def _tilted(g: VolumeGeometry, degrees: float) -> VolumeGeometry:
    step = np.asarray(g.slice_step) + np.asarray(g.column_direction) * g.slice_spacing * np.tan(np.radians(degrees))
    return VolumeGeometry(g.origin, g.row_direction, g.column_direction, g.pixel_spacing, tuple(step), g.shape)


def test_onto_grid_is_exact_under_flips_permutations_and_shear():
    from radlabel.geometry import onto_grid

    g = VolumeGeometry.axial((4, 5, 6), (0.8, 0.9), 2.5, centre=(3.0, -2.0, 10.0))
    labels = np.random.default_rng(1).integers(0, 4, g.shape)
    reversed_slices = VolumeGeometry(tuple(g.slice_position(3)), g.row_direction, g.column_direction, g.pixel_spacing,
                                     tuple(-np.asarray(g.slice_step)), g.shape)
    assert np.array_equal(onto_grid(labels[::-1], reversed_slices, g), labels)
    swapped = VolumeGeometry(g.origin, g.column_direction, g.row_direction, g.pixel_spacing[::-1], g.slice_step,
                             (4, 6, 5))
    assert np.array_equal(onto_grid(np.transpose(labels, (0, 2, 1)), swapped, g), labels)
    tilted = _tilted(g, 12.0)
    assert tilted.tilt_degrees == pytest.approx(12.0)
    assert np.array_equal(onto_grid(labels, tilted, tilted), labels)


def test_grids_that_do_not_coincide_are_named():
    from radlabel.geometry import GridMismatch, grid_difference, onto_grid

    g = VolumeGeometry.axial((4, 5, 6), (0.8, 0.9), 2.5)
    assert grid_difference(_tilted(g, 12.0), g) == \
        "the slice stacking differs (tilted 12.0 against 0.0 degrees off the normal)"
    assert grid_difference(VolumeGeometry.axial((4, 5, 6), (1.0, 0.9), 2.5), g).startswith("the voxel size differs")
    shifted = VolumeGeometry((g.origin[0] + 0.3, *g.origin[1:]), g.row_direction, g.column_direction,
                             g.pixel_spacing, g.slice_step, g.shape)
    assert grid_difference(shifted, g) == "the grids are shifted by 0.300 mm, a fraction of a voxel"
    turn = np.radians(30)
    oblique = VolumeGeometry(g.origin, (np.cos(turn), np.sin(turn), 0.0), (-np.sin(turn), np.cos(turn), 0.0),
                             g.pixel_spacing, g.slice_step, g.shape)
    assert grid_difference(oblique, g) == "the orientation differs (rows along L 30.0 deg, columns along P 30.0 deg " \
                                          "against L, columns along P)"
    with pytest.raises(GridMismatch, match="outside the target grid"):
        onto_grid(np.ones((1, 1, 1)), g.padded((20, 0, 0), (20, 0, 0)), g)  # same lattice, 16 slices above


def test_stack_geometry_places_slices_with_gaps_and_tilt_and_refuses_a_bent_stack():
    from radlabel.geometry import GridMismatch, stack_geometry

    g = _tilted(VolumeGeometry.axial((6, 5, 4), (0.8, 0.9), 2.0), 15.0)
    kept = [4, 0, 1, 5]  # unordered, two missing
    geometry, slots = stack_geometry([g.slice_position(k) for k in kept], g.image_orientation, g.pixel_spacing, 5, 4)
    assert slots.tolist() == kept and geometry.shape == (6, 5, 4)
    assert np.allclose(geometry.affine_lps(), g.affine_lps())
    bent = [g.slice_position(k) for k in range(4)]
    bent[2] = [bent[2][0] + 1.0, *bent[2][1:]]
    with pytest.raises(GridMismatch, match="do not lie on one line"):
        stack_geometry(bent, g.image_orientation, g.pixel_spacing, 5, 4)


def test_nifti_round_trip_keeps_a_sheared_affine():
    from radlabel.geometry import labelmap_to_nifti, nifti_geometry

    g = _tilted(VolumeGeometry.axial((3, 4, 5), (0.7, 0.6), 1.5), 20.0)
    labels = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    array, back = nifti_geometry(labelmap_to_nifti(labels, g))
    assert np.array_equal(array, labels) and np.allclose(back.affine_lps(), g.affine_lps())
