"""The ensemble steps: calibrate candidates, blend them, score the blend nested."""
