"""The 68-joint Halpe skeleton used by the pose stream, and its ST-GCN adjacency partitions.

Joint order (68 joints, what the pose stream takes as input):

* 0-25: the 26 body joints of AlphaPose's Halpe-26 layout:
  0 nose, 1 left eye, 2 right eye, 3 left ear, 4 right ear, 5 left shoulder, 6 right shoulder,
  7 left elbow, 8 right elbow, 9 left wrist, 10 right wrist, 11 left hip, 12 right hip,
  13 left knee, 14 right knee, 15 left ankle, 16 right ankle, 17 head (top), 18 neck, 19 hip (centre),
  20 left big toe, 21 right big toe, 22 left small toe, 23 right small toe, 24 left heel, 25 right heel.
* 26-46: left hand, 47-67: right hand, each in the 21-point hand layout shared by Halpe-136,
  COCO-WholeBody and OpenPose: 0 wrist, 1-4 thumb (CMC, MCP, IP, tip), 5-8 index, 9-12 middle,
  13-16 ring, 17-20 little finger (MCP, PIP, DIP, tip).

Edges: the Halpe-26 skeleton as AlphaPose draws it plus a nose-neck edge (AlphaPose leaves the face
unconnected), the 20 bones of each hand, and each body wrist linked to the wrist point of its hand.
The graph is a tree over all 68 joints (67 edges, connected).
"""

from __future__ import annotations

import numpy as np


HALPE26_JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head", "neck", "hip",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)  # fmt: skip

HAND21_JOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)  # fmt: skip

HALPE26_EDGES = (
    (0, 1), (0, 2), (1, 3), (2, 4),  # head
    (5, 18), (6, 18), (5, 7), (7, 9), (6, 8), (8, 10),  # arms
    (17, 18), (18, 19), (19, 11), (19, 12),  # trunk
    (11, 13), (12, 14), (13, 15), (14, 16),  # legs
    (20, 24), (21, 25), (23, 25), (22, 24), (15, 24), (16, 25),  # feet
    (0, 18),  # nose <-> neck: not drawn by AlphaPose, added so the face is connected to the body (as in OpenPose)
)  # fmt: skip

HAND21_EDGES = tuple(
    edge
    for finger_start in (1, 5, 9, 13, 17)
    for edge in ((0, finger_start), (finger_start, finger_start + 1), (finger_start + 1, finger_start + 2), (finger_start + 2, finger_start + 3))
)

LEFT_HAND_OFFSET = 26
RIGHT_HAND_OFFSET = 47
NUM_BODY_JOINTS = 26
NUM_HAND_JOINTS = 21

HALPE68_JOINT_NAMES = (
    HALPE26_JOINT_NAMES
    + tuple(f"left_hand_{n}" for n in HAND21_JOINT_NAMES)
    + tuple(f"right_hand_{n}" for n in HAND21_JOINT_NAMES)
)

HALPE68_EDGES = (
    HALPE26_EDGES
    + tuple((a + LEFT_HAND_OFFSET, b + LEFT_HAND_OFFSET) for a, b in HAND21_EDGES)
    + tuple((a + RIGHT_HAND_OFFSET, b + RIGHT_HAND_OFFSET) for a, b in HAND21_EDGES)
    + ((9, LEFT_HAND_OFFSET), (10, RIGHT_HAND_OFFSET))  # body wrist <-> hand wrist
)

GRAPH_LAYOUTS = {
    "halpe68": {"num_joints": 68, "edges": HALPE68_EDGES, "center": 18},  # centre: the neck
    "halpe26": {"num_joints": 26, "edges": HALPE26_EDGES, "center": 18},
}


def hop_distance(num_joints: int, edges, source: int) -> np.ndarray:
    """Graph distance (number of edges) of every joint from `source`; `inf` where unreachable."""
    neighbours = [[] for _ in range(num_joints)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    distance = np.full(num_joints, np.inf)
    distance[source] = 0
    frontier = [source]
    while frontier:
        nxt = []
        for node in frontier:
            for other in neighbours[node]:
                if distance[other] == np.inf:
                    distance[other] = distance[node] + 1
                    nxt.append(other)
        frontier = nxt
    return distance


def spatial_partition_adjacency(layout: str = "halpe68") -> np.ndarray:
    """ST-GCN's "spatial configuration" partition of the skeleton (Yan et al., AAAI 2018).

    Returns `A` of shape `(3, V, V)` with `A[k, v, w]` the weight with which joint `v` feeds joint `w`
    in partition `k`: 0 = root (the joint itself, and neighbours as far from the centre as `w`),
    1 = centripetal (neighbours closer to the centre), 2 = centrifugal (neighbours farther away).
    Each column `w` is normalised by the number of neighbours of `w` (itself included), so a graph
    convolution averages over the neighbourhood.
    """
    spec = GRAPH_LAYOUTS[layout]
    num_joints, edges = spec["num_joints"], spec["edges"]
    to_centre = hop_distance(num_joints, edges, spec["center"])
    neighbours = np.eye(num_joints, dtype=bool)
    for a, b in edges:
        neighbours[a, b] = neighbours[b, a] = True
    degree = neighbours.sum(axis=0)
    adjacency = np.zeros((3, num_joints, num_joints), dtype=np.float32)
    for w in range(num_joints):
        for v in np.flatnonzero(neighbours[:, w]):
            if to_centre[v] == to_centre[w]:
                k = 0
            elif to_centre[v] < to_centre[w]:
                k = 1
            else:
                k = 2
            adjacency[k, v, w] = 1.0 / degree[w]
    return adjacency


__all__ = [
    "GRAPH_LAYOUTS",
    "HALPE26_EDGES",
    "HALPE26_JOINT_NAMES",
    "HALPE68_EDGES",
    "HALPE68_JOINT_NAMES",
    "HAND21_EDGES",
    "HAND21_JOINT_NAMES",
    "hop_distance",
    "spatial_partition_adjacency",
]
