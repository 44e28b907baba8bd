"""robustmnist: how will this digit classifier behave on digits that don't look like MNIST?

The stable Python API (imported on first use, so ``import robustmnist`` stays cheap and does
not load torch)::

    robustmnist.evaluate(model, suite=..., shift=..., severity=..., n=..., ood=...) -> Result
    robustmnist.bench([model, ...], suite=..., n=..., ray=...) -> BenchResult
    robustmnist.load_model(path_or_object, ...)      robustmnist.load_set(shift, severity, n=...)
    robustmnist.shifts()                             robustmnist.diagnose(model)
    robustmnist.predict(model, ["photo.jpg", ...]) -> [Prediction]  (your own photos, framed)
    robustmnist.load_suite(name)  robustmnist.get_shift(name)  robustmnist.render_reports(...)
    robustmnist.Result  robustmnist.Preprocess  robustmnist.UserError
"""

from importlib import import_module
from importlib.util import find_spec

__version__ = "0.1.0"

# public name -> module defining it (scikit-learn's lazy top level, PEP 562)
_API = {
    "evaluate": "robustmnist.api",
    "bench": "robustmnist.api",
    "BenchResult": "robustmnist.api",
    "load_model": "robustmnist.api",
    "load_set": "robustmnist.api",
    "diagnose": "robustmnist.api",
    "predict": "robustmnist.api",
    "Result": "robustmnist.api",
    "load_suite": "robustmnist.shifts.suite",
    "get_shift": "robustmnist.shifts.registry",
    "render_reports": "robustmnist.report.render",
    "Preprocess": "robustmnist.models.preprocess",
    "UserError": "robustmnist.errors",
}
# robustmnist.shifts is the shift subpackage, made callable: robustmnist.shifts() lists the catalog.
_SUBMODULES = ("shifts",)

__all__ = ["__version__", *_API, *_SUBMODULES]


def __getattr__(name: str):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
    elif name in _SUBMODULES or (not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None):
        value = import_module(f"{__name__}.{name}")  # robustmnist.api, robustmnist.results, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
