"""Wrappers of pre-trained models that two or more tables use: the frozen MiniLM text tower and the one text
embedding cache (text_encoder), CLIP-style image-text models (clip_style), EfficientNet-Lite0 features
(efficientnet), hub models by id (hub) and the one hub-CLIP adapter (hub_clip)."""
