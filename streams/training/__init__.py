"""Training the crowd emotion model: ``crowdsound model train``.

- :mod:`~streams.training.scripts`: random synthetic match scripts;
- :mod:`~streams.training.dataset`: rendered, analysed and labelled windows (synthetic
  matches and a folder of labelled clips);
- :mod:`~streams.training.augment`: microphones, rooms, gain and codecs applied to audio;
- :mod:`~streams.training.real`: the real recordings (data/real-crowd) as training windows;
- :mod:`~streams.training.model`: the scikit-learn estimators and how they are fitted;
- :mod:`~streams.training.export`: the estimators as one ONNX graph (skl2onnx);
- :mod:`~streams.training.evaluate`: ``crowdsound model evaluate`` on labelled clips;
- :mod:`~streams.training.train`: split by recording, train, evaluate, export;
- :mod:`~streams.training.card`: the model card.
"""

from streams.training.train import TrainOptions, TrainReport, train

__all__ = ["TrainOptions", "TrainReport", "train"]
