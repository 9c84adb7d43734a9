"""Body and hand pose: the skeleton graph (`graph`: the 68 Halpe joints and their ST-GCN partitions) and keypoint files
(`keypoints`: AlphaPose / COCO-WholeBody JSON -> 68 joints, persons tracked over time, resampled)."""
