"""Training: preprocessing cache, patch sampling + augmentation, missing-modality schedules, loop, DDP, checkpoints."""
