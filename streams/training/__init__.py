"""Training the crowd emotion model: ``crowdsound model train``.

- :mod:`~streams.training.scripts`: random synthetic match scripts;
- :mod:`~streams.training.dataset`: rendered, analysed and labelled windows (synthetic
  matches and a folder of labelled clips);
- :mod:`~streams.training.mlp`: the networks, trained in numpy;
- :mod:`~streams.training.export`: the ONNX graph, built node by node;
- :mod:`~streams.training.train`: split by recording, train, evaluate, export;
- :mod:`~streams.training.card`: the model card.
"""

from streams.training.train import TrainOptions, TrainReport, train

__all__ = ["TrainOptions", "TrainReport", "train"]
