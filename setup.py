"""Installable package for tribert_hf (src/ layout)."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "src", "tribert_hf", "__init__.py"), encoding="utf-8") as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    LONG_DESCRIPTION = f.read()

# torch / torchvision / torchaudio travel together: torchaudio 2.11 pins torch 2.11 exactly.
INSTALL_REQUIRES = [
    "torch>=2.11,<2.12",
    "torchvision>=0.26,<0.27",
    "torchaudio>=2.11,<2.12",
    "transformers>=5.0,<6",
    "accelerate>=1.10,<2",
    "datasets>=4.0,<6",
    "safetensors>=0.4,<1",
    "huggingface_hub>=1.0,<3",
    "mir_eval>=0.8,<0.9",
    "numpy>=1.24,<3",
    "scipy>=1.10,<2",
    "matplotlib>=3.7,<4",
    "tqdm>=4.60",
    "tensorboard>=2.14,<3",  # the recipes' default tracker
]

EXTRAS = {
    # Video decoding (torchcodec's PyPI wheel needs a system FFmpeg and the CUDA NPP libraries).
    "video": ["torchcodec>=0.11,<0.12", "nvidia-npp>=13,<14"],
    "dev": ["pytest>=8", "pytest-timeout>=2.3", "librosa>=0.10"],
    # `tribert index`: FAISS inner-product indexes next to the embeddings (without it: exact NumPy search, same top-k)
    "faiss": ["faiss-cpu>=1.8,<2"],
    # benchmarks/speed.py's peer rows, measured beside ours in the same run (a missing one is skipped, and says so):
    # fast_bss_eval (its torch backend) and torchmetrics' SDR beside mir_eval, librosa's STFT beside our features
    "bench": ["fast-bss-eval>=0.1.4,<0.2", "torchmetrics>=1.4,<2", "librosa>=0.10"],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name="tribert_hf",
    version=VERSION,
    description="HuggingFace-native TriBERT: tri-modal (vision, pose, audio) transformer for "
    "music sound-source separation and cross-modal retrieval",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"tribert_hf.data": ["lists/*.json", "lists/*.csv"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["tribert=tribert_hf.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
    ],
)
