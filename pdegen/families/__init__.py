"""PDE families: each knows its grid, samples its inputs and assembles its linear systems."""

from pdegen.families.base import Family, Sample
from pdegen.families.darcy import Darcy2D

FAMILIES: dict[str, type[Family]] = {"darcy": Darcy2D}


def family_from_recipe(recipe) -> Family:
    """Build the family a recipe names (the recipe is already validated)."""
    return FAMILIES[recipe.family].from_recipe(recipe)


__all__ = ["FAMILIES", "Darcy2D", "Family", "Sample", "family_from_recipe"]
