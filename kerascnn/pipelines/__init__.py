"""Input pipelines: sources, splits, normalization, batches of data (``tf.data`` or NumPy).

The pipeline returns data (images and integer labels); the model's augmentation,
standardization and MixUp / CutMix are the task's (:func:`kerascnn.tasks.input_layers`).

import kerascnn
train = kerascnn.pipelines.load("cifar10-sample", split="train")      # offline
val = kerascnn.pipelines.load("cifar10-sample", split="validation")
layers = kerascnn.tasks.input_layers(train, "flip,padcrop")
model = kerascnn.tasks.ImageClassifier.from_preset(       # takes raw pixels
    "resnet20", **layers.task_options())
pipe = kerascnn.pipelines.build(train, batch_size=128, normalize="none")
val_pipe = kerascnn.pipelines.build(val, shuffle=False, normalize="none")
model.compile(); model.fit(pipe.dataset, validation_data=val_pipe.dataset)
"""

from kerascnn.pipelines.augment_spec import AugmentPlan, parse_augment
from kerascnn.pipelines.build import Pipeline, build
from kerascnn.pipelines.dataset import Dataset, DatasetInfo
from kerascnn.pipelines.normalization import (
    PUBLISHED_STATS,
    Normalization,
    compute_stats,
    resolve_normalization,
)
from kerascnn.pipelines.sources import (
    SAMPLE_NAME,
    BadImageFileError,
    DataNotFoundError,
    available_sources,
    load,
    sample_metadata,
)
from kerascnn.pipelines.splits import stratified_split_indices, train_val_split

__all__ = [
    "AugmentPlan",
    "available_sources",
    "BadImageFileError",
    "build",
    "compute_stats",
    "DataNotFoundError",
    "Dataset",
    "DatasetInfo",
    "load",
    "Normalization",
    "parse_augment",
    "Pipeline",
    "PUBLISHED_STATS",
    "resolve_normalization",
    "sample_metadata",
    "SAMPLE_NAME",
    "stratified_split_indices",
    "train_val_split",
]
