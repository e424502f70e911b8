"""Stage 1 of VASA-1: the face latent space (V_app, z_id, z_pose, z_dyn) and its decoder.

Public API: :class:`FaceLatentModel` (implements :class:`LatentSpace`), :class:`LatentModelConfig`,
``LATENT_SIZES`` / :func:`latent_config`, :func:`grid_sample_3d` (the one 5D warp, with a 2D
fallback), and the losses in :mod:`vasa.latent.losses`.

The stage (``train_latent`` / ``export_motion`` in ``dvc.yaml``): :func:`train_latent` (identity
embedder + :class:`~vasa.latent.task.LatentTask` through the shared loop, export) and
:func:`load_latent` (:mod:`vasa.latent.train`), :func:`~vasa.latent.evaluate.evaluate_latent`,
:func:`~vasa.latent.export.export_motion` (per-clip motion files), the identity embedder in
:mod:`vasa.latent.identity`.
"""

from vasa.latent.config import LATENT_SIZES, LatentModelConfig, latent_config
from vasa.latent.model import FaceLatentModel, LatentSpace
from vasa.latent.warp import grid_sample_3d


def __getattr__(name: str):
    """Stage entry points, imported on first use (they pull in the training loop and dvclive)."""
    if name in ("train_latent", "load_latent"):
        from vasa.latent import train

        return getattr(train, name)
    if name == "evaluate_latent":
        from vasa.latent.evaluate import evaluate_latent

        return evaluate_latent
    if name == "export_motion":
        from vasa.latent.export import export_motion

        return export_motion
    raise AttributeError(f"module 'vasa.latent' has no attribute {name!r}")


__all__ = ["FaceLatentModel", "LatentSpace", "LatentModelConfig", "LATENT_SIZES", "latent_config", "grid_sample_3d",
           "train_latent", "load_latent", "evaluate_latent", "export_motion"]
