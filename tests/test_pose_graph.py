import numpy as np
import pytest

from tribert_hf.pose.graph import (
    GRAPH_LAYOUTS,
    HALPE68_EDGES,
    HALPE68_JOINT_NAMES,
    hop_distance,
    spatial_partition_adjacency,
)


def test_halpe68_is_a_connected_tree_with_named_joints():
    assert len(HALPE68_JOINT_NAMES) == 68 == len(set(HALPE68_JOINT_NAMES))
    edges = {tuple(sorted(e)) for e in HALPE68_EDGES}
    assert len(edges) == len(HALPE68_EDGES) == 67  # 25 body + 2 x 20 hand + 2 wrist links: a tree
    assert all(0 <= a < 68 and 0 <= b < 68 and a != b for a, b in edges)
    distance = hop_distance(68, HALPE68_EDGES, GRAPH_LAYOUTS["halpe68"]["center"])
    assert np.isfinite(distance).all(), "every joint must be reachable from the neck"


def test_wrists_link_to_their_hands():
    names = HALPE68_JOINT_NAMES
    edges = {tuple(sorted(e)) for e in HALPE68_EDGES}
    assert tuple(sorted((names.index("left_wrist"), names.index("left_hand_wrist")))) in edges
    assert tuple(sorted((names.index("right_wrist"), names.index("right_hand_wrist")))) in edges
    assert tuple(sorted((names.index("left_hand_wrist"), names.index("left_hand_index_mcp")))) in edges


@pytest.mark.parametrize("layout", sorted(GRAPH_LAYOUTS))
def test_spatial_partitions_average_over_each_neighbourhood(layout):
    adjacency = spatial_partition_adjacency(layout)
    num_joints = GRAPH_LAYOUTS[layout]["num_joints"]
    assert adjacency.shape == (3, num_joints, num_joints)
    np.testing.assert_allclose(adjacency.sum(axis=(0, 1)), 1.0, rtol=1e-6)
    # the joint itself is always in the root partition
    assert (np.diagonal(adjacency[0]) > 0).all()
    # centripetal and centrifugal partitions are each other's transpose pattern
    np.testing.assert_array_equal(adjacency[1] > 0, (adjacency[2] > 0).T)
