"""Stage 1, the recipe: read a YAML file (`reader`), validate it into a frozen `Recipe`
(`schema`), and refuse what cannot run before anything is written (`limits`: sizes and
overflow; `resources`: memory). Imports no PETSc and no MPI."""

from pdegen.recipe.schema import Recipe, apply_settings, load_recipe, recipe_from_dict

__all__ = ["Recipe", "apply_settings", "load_recipe", "recipe_from_dict"]
