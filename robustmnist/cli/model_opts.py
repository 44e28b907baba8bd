"""Options several commands share, defined once so their flags and help cannot drift apart:
how to load a model file (eval, doctor, bench) and where the datasets live."""

from __future__ import annotations

import typer

ARCH = typer.Option(None, "--arch", help="architecture of a bare state_dict")
TRUST_PICKLE = typer.Option(False, "--trust-pickle", help="allow unpickling a full pickled model "
                            "(runs code from the file!)")
MODEL_CODE = typer.Option(None, "--model-code", help="FILE.py:ClassName defining the network of a "
                          "state_dict (or the class of a pickled model)")
MODEL_KWARGS = typer.Option(None, "--model-kwargs", help="JSON constructor arguments for --model-code, "
                            "e.g. '{\"hidden\": 128}'")
DATA_ROOT = typer.Option(None, "--data-root", help="dataset folder (else ROBUSTMNIST_DATA, else "
                         "~/.cache/robustmnist)")
