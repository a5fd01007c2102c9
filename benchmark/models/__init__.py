"""Model architectures, the training recipe and the checkpoint cache."""
