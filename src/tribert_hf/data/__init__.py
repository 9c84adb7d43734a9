"""Data: the prepared-dataset format, the built-in synthetic music dataset, and preparation from real videos."""

from .collator import MixAndSeparateCollator, MixtureBatchSampler
from .features import PreparedClipFeaturizer
from .prepared import (
    PREPARED_FEATURES,
    SPLITS,
    LazyFrames,
    lazy_frames,
    frame_paths,
    load_prepared,
    read_audio,
    read_frames,
    read_pose,
    read_wav,
    save_prepared,
    write_media,
    write_report,
    write_wav,
)
from .synthetic import SYNTHETIC_PRESETS, generate_synthetic_music, load_synthetic_music, read_sources
