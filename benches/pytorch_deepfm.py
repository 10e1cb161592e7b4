#!/usr/bin/env python3
"""The DeepFM twin, kept for older commands: now one model of benches/pytorch_zoo.py.

    python3 benches/pytorch_deepfm.py --batch 4096 --fields 26 --steps 200
"""
import os
import runpy
import sys

sys.argv = [sys.argv[0], "--model", "deepfm", *sys.argv[1:]]
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_zoo.py"),
               run_name="__main__")
