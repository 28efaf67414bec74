"""tf.data input pipelines: sources, splits, normalization, augmentation placement.

import kerascnn
train = kerascnn.pipelines.load("cifar10-sample", split="train")      # offline
val = kerascnn.pipelines.load("cifar10-sample", split="validation")
pipe = kerascnn.pipelines.build(train, batch_size=128, augment="flip,padcrop",
                                normalize_in="model")
model = pipe.wrap(kerascnn.zoo.resnet(depth=20))   # takes raw pixels
val_pipe = kerascnn.pipelines.build(val, shuffle=False, normalize=pipe.normalization,
                                    normalize_in="model")
model.compile(...); model.fit(pipe.dataset, validation_data=val_pipe.dataset)
"""

from kerascnn.pipelines.augment_spec import AugmentPlan, parse_augment  # noqa: F401
from kerascnn.pipelines.build import Pipeline, build  # noqa: F401
from kerascnn.pipelines.dataset import Dataset, DatasetInfo  # noqa: F401
from kerascnn.pipelines.normalization import (  # noqa: F401
    PUBLISHED_STATS,
    Normalization,
    compute_stats,
    resolve_normalization,
)
from kerascnn.pipelines.sources import (  # noqa: F401
    SAMPLE_NAME,
    BadImageFileError,
    DataNotFoundError,
    available_sources,
    load,
    sample_metadata,
)
from kerascnn.pipelines.splits import stratified_split_indices, train_val_split  # noqa: F401
