"""Figures and widgets for the course notebooks; each falls back to a static figure."""
