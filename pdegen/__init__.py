"""pdegen: PDE training data for neural operators, solved by sorted Krylov recycling."""

from pdegen.dataset.loader import ShardDataset, open_dataset
from pdegen.errors import PdegenError, RecipeError

__version__ = "0.1.0"
__all__ = ["PdegenError", "RecipeError", "ShardDataset", "__version__", "open_dataset"]
