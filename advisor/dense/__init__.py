"""Dense tasks: object detection and semantic segmentation (readers, models, proxies, the recommend pipeline).

The records are in `advisor.dense.types`; heavy modules (torch, models) are imported only where used.
"""
