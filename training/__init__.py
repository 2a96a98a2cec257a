"""Training: repository FIM datasets, LoRA/QLoRA/full fine-tuning, default-model pretraining."""
