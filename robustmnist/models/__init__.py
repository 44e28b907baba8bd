"""Model architectures (zoo), file formats (load), and the preprocess spec."""
