"""Meta-learned language-model adaptation to held-out Brown corpus genres."""
