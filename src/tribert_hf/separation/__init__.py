"""Mask-based source separation, shared by TriBERT and the baselines: the attention U-Net (`unet`), the mask losses
(`losses`) and the segment-by-segment application of a model to audio of any length (`apply`)."""
