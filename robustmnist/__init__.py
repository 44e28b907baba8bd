"""robustmnist: how will this digit classifier behave on digits that don't look like MNIST?"""

__version__ = "0.1.0"
