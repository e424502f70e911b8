"""Stage 1 of VASA-1: the face latent space (V_app, z_id, z_pose, z_dyn) and its decoder.

Public API: :class:`FaceLatentModel` (implements :class:`LatentSpace`), :class:`LatentModelConfig`,
``LATENT_SIZES`` / :func:`latent_config`, :func:`grid_sample_3d` (the one 5D warp, with a 2D
fallback), and the losses in :mod:`vasa.latent.losses`.
"""

from vasa.latent.config import LATENT_SIZES, LatentModelConfig, latent_config
from vasa.latent.model import FaceLatentModel, LatentSpace
from vasa.latent.warp import grid_sample_3d

__all__ = ["FaceLatentModel", "LatentSpace", "LatentModelConfig", "LATENT_SIZES", "latent_config", "grid_sample_3d"]
