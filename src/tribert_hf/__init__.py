"""tribert_hf: HuggingFace-native TriBERT (vision, pose and audio with tri-modal co-attention)."""

__version__ = "0.1.0.dev0"

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoProcessor,
    AutoVideoProcessor,
)

from .baselines.configuration_baselines import AudioOnlySeparationConfig, SoundOfPixelsConfig
from .baselines.modeling_baselines import (
    AudioOnlyForSourceSeparation,
    AudioOnlySeparationOutput,
    SoundOfPixelsForSourceSeparation,
)
from .configuration_tribert import (
    MUSIC21_LABELS,
    MUSIC_LABELS,
    TriBertAudioConfig,
    TriBertConfig,
    TriBertPoseConfig,
    TriBertVisionConfig,
)
from .feature_extraction_tribert import TriBertFeatureExtractor
from .modeling_tribert import (
    TriBertForPreTraining,
    TriBertForPreTrainingOutput,
    TriBertForSourceSeparation,
    TriBertModel,
    TriBertModelOutput,
    TriBertPreTrainedModel,
    TriBertSeparationOutput,
)
from .modeling_tribert_retrieval import (
    TriBertContrastiveOutput,
    TriBertForContrastiveRetrieval,
    TriBertForRetrieval,
    TriBertRetrievalOutput,
    compose_retrieval_pairs,
    contrastive_embedding_query,
    contrastive_loss,
    retrieval_top_k,
)
from .pipeline_tribert import TriBertSourceSeparationPipeline, register_pipeline
from .processing_tribert import TriBertProcessor
from .separation.apply import reorder_sources, separate, separate_in_segments
from .separation.losses import permutation_invariant_mask_loss
from .video_processing_tribert import TriBertVideoProcessor


def _register() -> None:
    """Register with the Auto classes (on import) and for `trust_remote_code` export (on `save_pretrained`)."""
    for config_class in (TriBertConfig, TriBertVisionConfig, TriBertPoseConfig, TriBertAudioConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(TriBertConfig, TriBertModel, exist_ok=True)
    AutoModelForPreTraining.register(TriBertConfig, TriBertForPreTraining, exist_ok=True)
    AutoFeatureExtractor.register(TriBertConfig, TriBertFeatureExtractor, exist_ok=True)
    AutoVideoProcessor.register(TriBertConfig, TriBertVideoProcessor, exist_ok=True)
    AutoProcessor.register(TriBertConfig, TriBertProcessor, exist_ok=True)
    for config_class in (AudioOnlySeparationConfig, SoundOfPixelsConfig):  # the separation baselines
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(AudioOnlySeparationConfig, AudioOnlyForSourceSeparation, exist_ok=True)
    AutoModel.register(SoundOfPixelsConfig, SoundOfPixelsForSourceSeparation, exist_ok=True)
    # Retrieval is n-way multiple choice (inputs `(batch, n, ...)`), as transformers' multiple-choice heads.
    AutoModelForMultipleChoice.register(TriBertConfig, TriBertForRetrieval, exist_ok=True)
    # Saved folders load without this package (`trust_remote_code=True`): `auto_map` + the code files. Transformers
    # has no Auto class for source separation: a separation folder's `AutoModel` is the separation model.
    for config_class in (TriBertConfig, AudioOnlySeparationConfig, SoundOfPixelsConfig):
        config_class.register_for_auto_class()
    TriBertModel.register_for_auto_class("AutoModel")
    TriBertForPreTraining.register_for_auto_class("AutoModelForPreTraining")
    TriBertForRetrieval.register_for_auto_class("AutoModelForMultipleChoice")
    TriBertForSourceSeparation.register_for_auto_class("AutoModel")
    TriBertForContrastiveRetrieval.register_for_auto_class("AutoModel")  # as CLIPModel: the folder's AutoModel
    AudioOnlyForSourceSeparation.register_for_auto_class("AutoModel")
    SoundOfPixelsForSourceSeparation.register_for_auto_class("AutoModel")
    TriBertFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    TriBertVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    TriBertProcessor.register_for_auto_class("AutoProcessor")
    register_pipeline()  # pipeline("audio-source-separation", model=folder)


_register()

__all__ = [
    "AudioOnlyForSourceSeparation",
    "AudioOnlySeparationConfig",
    "AudioOnlySeparationOutput",
    "SoundOfPixelsConfig",
    "SoundOfPixelsForSourceSeparation",
    "permutation_invariant_mask_loss",
    "reorder_sources",
    "separate",
    "separate_in_segments",
    "MUSIC21_LABELS",
    "MUSIC_LABELS",
    "TriBertAudioConfig",
    "TriBertConfig",
    "TriBertContrastiveOutput",
    "TriBertFeatureExtractor",
    "TriBertForContrastiveRetrieval",
    "TriBertForPreTraining",
    "TriBertForPreTrainingOutput",
    "TriBertForRetrieval",
    "TriBertForSourceSeparation",
    "TriBertModel",
    "TriBertModelOutput",
    "TriBertPoseConfig",
    "TriBertPreTrainedModel",
    "TriBertProcessor",
    "TriBertRetrievalOutput",
    "TriBertSeparationOutput",
    "TriBertSourceSeparationPipeline",
    "TriBertVideoProcessor",
    "TriBertVisionConfig",
    "compose_retrieval_pairs",
    "contrastive_embedding_query",
    "contrastive_loss",
    "retrieval_top_k",
]
