"""Preflight diagnosis: name the reason a digit classifier "gets 0.49" or "sits at 10%".

Most reports of terrible MNIST accuracy are not about the model's capacity but about a
convention mismatch between training and evaluation: pixels in 0-255 versus 0-1 (or divided
by 255 twice), ``Normalize((0.1307,), (0.3081,))`` applied in training but not at test time,
inverted polarity, transposed images (EMNIST stores its images transposed), a flattened
versus 1×28×28 layout, a softmax inside the model, class indices in the wrong order. Each
leaves a fingerprint that a few forward passes can read:

1. Score a fixed, class-balanced 1,000-image MNIST test sample under every candidate input
   convention (range × polarity × transpose × accepted layouts). One forward pass per input
   convention; the output kinds (logits, log-probs, probs) are transforms of the same output,
   so they cost nothing extra.
2. Read the raw outputs: rows summing to 1 mean a softmax in the model, rows whose exp sums
   to 1 a log_softmax; NaN/inf rows mean broken weights or an overflowing input range.
3. Compare the declared convention with the best one. A difference only counts when it is
   clearly more than sampling noise (paired McNemar test on the same images), so a healthy
   model is never told to switch between two equivalent conventions.
4. Look for what no convention fixes: chance level everywhere, one predicted class, a class
   order permuted consistently (Hungarian assignment on the confusion matrix), dead ReLUs.

``diagnose`` returns a ``Diagnosis`` dataclass (JSON via ``to_dict``); ``guard`` is the cheap
version eval, bench and the API run before a long evaluation.

Modules, in the order the data flows: ``measure`` (the sample and the scored convention grid),
``dead_units``, ``findings`` (the bars and the words of each finding), ``diagnosis`` (which
convention is right and which findings apply), ``guard`` (the verdict before an evaluation).
"""

from .diagnosis import Diagnosis, diagnose, load_for_diagnosis
from .findings import Finding
from .measure import ConventionScore, load_sample

__all__ = ["ConventionScore", "Diagnosis", "Finding", "diagnose", "load_for_diagnosis", "load_sample"]
