"""Model-based bid planning under posterior uncertainty (issue 9)."""
