from mcrlib.losses.ceb import CEBDecoder
from mcrlib.losses.contrastive import contrastive_loss, fused_contrastive_loss
from mcrlib.losses.jsd import jsd, jsd_rows, mse_divergence, mse_rows
from mcrlib.losses.mipd import STRATEGIES, mipd_loss, perturbed_subsets
from mcrlib.losses.perturbations import PERTURBATIONS, make_perturbation

__all__ = ["CEBDecoder", "PERTURBATIONS", "STRATEGIES", "contrastive_loss", "fused_contrastive_loss", "jsd", "jsd_rows",
           "make_perturbation", "mipd_loss", "mse_divergence", "mse_rows", "perturbed_subsets"]
