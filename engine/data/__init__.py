"""The data stage: reading files of any common shape, normalizing them to conversations, the quality report and its
checks (checks/), one-click fixes as new immutable versions, the leakage-free split and its locked test set, and
token counts."""
