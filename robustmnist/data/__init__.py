"""Where digits come from: the data root and torchvision loaders (datasets), real digit sets
(real), MNIST framing (framing) and out-of-distribution sources (ood).
"""
