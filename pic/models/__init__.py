"""Thin wrappers that adapt pre-trained models (diffusers, transformers, CLIP-style) to the pic.energy contract."""
