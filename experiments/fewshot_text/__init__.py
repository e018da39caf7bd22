"""Few-shot text classification: episodes over labelled text, a small transformer."""
