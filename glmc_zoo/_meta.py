"""Package-wide constants kept in one place."""

__version__ = "0.1.0"

#: The Hugging Face Hub organisation under which every glmc-zoo weight set is (to be) published.
HF_ORG = "glmc-zoo"
