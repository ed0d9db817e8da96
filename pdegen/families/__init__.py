"""PDE families: each knows its grid, samples its inputs and assembles its linear systems."""

from pdegen.families.acoustic import Acoustic
from pdegen.families.advection import Advection
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.families.burgers import Burgers
from pdegen.families.cavity import Cavity
from pdegen.families.channel import Channel
from pdegen.families.convection import ConvectionDiffusion
from pdegen.families.darcy import Darcy
from pdegen.families.diffusion_sorption import DiffusionSorption
from pdegen.families.elasticity import Elasticity
from pdegen.families.fisher_kpp import FisherKPP
from pdegen.families.fitzhugh_nagumo import FitzHughNagumo
from pdegen.families.heat import Heat
from pdegen.families.helmholtz import Helmholtz
from pdegen.families.kuramoto_sivashinsky import KuramotoSivashinsky
from pdegen.families.navier_stokes import NavierStokes
from pdegen.families.nonlinear_diffusion import NonlinearDiffusion
from pdegen.families.poisson import Poisson
from pdegen.families.reaction_diffusion import ReactionDiffusion
from pdegen.families.stokes import Stokes

FAMILIES: dict[str, type[Family]] = {
    f.name: f for f in (Darcy, Poisson, Helmholtz, Heat, ConvectionDiffusion, Elasticity, Stokes)
}
# The Newton families (solvers/newton.py)
FAMILIES.update({f.name: f for f in (NonlinearDiffusion, ReactionDiffusion)})
# PDEBench's 2D diffusion-reaction and 1D diffusion-sorption, on its cell-centred grids
FAMILIES.update({f.name: f for f in (FitzHughNagumo, DiffusionSorption)})
# Waves in bounded random media, marched with a solve per step (Newmark) or explicitly
FAMILIES[Acoustic.name] = Acoustic
# Incompressible flow on the MAC grid, a momentum and a pressure solve per step
FAMILIES.update({f.name: f for f in (Cavity, Channel)})
# The periodic families, integrated spectrally (solvers/spectral.py)
FAMILIES.update(
    {f.name: f for f in (Burgers, NavierStokes, KuramotoSivashinsky, Advection, FisherKPP)}
)


def family_from_recipe(recipe) -> Family:
    """Build the family a recipe names (the recipe is already validated)."""
    return FAMILIES[recipe.family].from_recipe(recipe)


__all__ = [
    "FAMILIES",
    "Acoustic",
    "Advection",
    "Burgers",
    "Cavity",
    "Channel",
    "FisherKPP",
    "FitzHughNagumo",
    "KuramotoSivashinsky",
    "NavierStokes",
    "ConvectionDiffusion",
    "Darcy",
    "DiffusionSorption",
    "Elasticity",
    "Family",
    "FieldAxes",
    "Heat",
    "Helmholtz",
    "NonlinearDiffusion",
    "Poisson",
    "ReactionDiffusion",
    "Sample",
    "Stokes",
    "family_from_recipe",
]
