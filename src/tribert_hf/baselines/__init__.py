"""The separation baselines of the TriBERT paper (Table 1): the audio-only U-Net trained with PIT and Sound of Pixels
(`configuration_baselines`, `modeling_baselines`). They share TriBERT's U-Net and losses (`tribert_hf.separation`)
and import tribert_hf's public names only."""
