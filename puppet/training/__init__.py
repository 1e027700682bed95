"""Training: the paper's meta-learning stage (train) and few-shot fine-tuning on a target (finetune)."""
