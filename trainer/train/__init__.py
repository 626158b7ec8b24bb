"""The training loop and its pieces: ``run_training(config, progress=..., should_stop=...)``."""

from trainer.train.loop import ProgressEvent, TrainResult, feedback_loss, run_training

__all__ = ["ProgressEvent", "TrainResult", "feedback_loss", "run_training"]
