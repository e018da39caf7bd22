"""Evaluation: episodic accuracy / error with 95% confidence intervals."""
