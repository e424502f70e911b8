"""Measurement: real pretrained detectors (MediaPipe, dlib) and the paper's metrics.

* detectors and embedders: :mod:`~vasa.eval.landmarks` (MediaPipe), :mod:`~vasa.eval.identity` (dlib),
  :mod:`~vasa.eval.probes` (linear probes of latent codes);
* the judges trained in the project (stage ``train_experts``, :mod:`~vasa.eval.experts`): the lip-sync
  expert (:mod:`~vasa.eval.sync_expert`), CAPP (:mod:`~vasa.eval.capp`), the expression classifier
  (:mod:`~vasa.eval.emotion`), on crops from :mod:`~vasa.eval.crops` and arrays from
  :mod:`~vasa.eval.expert_data`; the official SyncNet when a user has its weights
  (:mod:`~vasa.eval.syncnet_official`);
* the measures: :mod:`~vasa.eval.sync` (the SyncNet protocol), :mod:`~vasa.eval.metrics` (pure
  functions), :mod:`~vasa.eval.tracks` (face-mesh tracks), :mod:`~vasa.eval.fd` (FD-vasa-expert),
  :mod:`~vasa.eval.measure` (every measure of one video);
* the stage ``evaluate``: :mod:`~vasa.eval.testsets`, :mod:`~vasa.eval.rows` (+ :mod:`~vasa.eval.baselines`;
  the one adapter to the generator), :mod:`~vasa.eval.harness`, :mod:`~vasa.eval.workers`,
  :mod:`~vasa.eval.report`.
"""
