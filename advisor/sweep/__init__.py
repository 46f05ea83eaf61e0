"""`advisor sweep`: datasets x models through `advisor recommend` into one folder, resumable, with a combined report.

`advisor.sweep.config` (what runs: `SweepConfig`, `sweep_config`, `load_sweep_file`), `advisor.sweep.run` (running
and resuming: `run_sweep`), `advisor.sweep.report` (the combined rows and report files).
"""
