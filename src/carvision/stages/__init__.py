"""One module per pipeline stage; each has `main(cfg)` and runs as `python -m carvision.stages.<name>`."""
