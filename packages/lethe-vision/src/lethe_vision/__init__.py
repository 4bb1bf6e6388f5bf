"""lethe_vision: what every lethe image task (classification, backdoor, face) shares.

Nothing is imported here; each module is imported by name:

- ``data``: ``ImageData`` (uint8 images and labels), ``DatasetBundle``, ``TensorImageDataset``,
  augmentation, the seeded splits (``stratified_holdout``, ``per_class_sample``),
  ``check_forget_classes``, ``parse_classes``, ``align_classes``.
- ``images``: ``decode_image`` (one file to uint8 ``[C, H, W]``) and ``centre_crop``.
- ``datasets``: the ``DATASETS`` registry and ``load_dataset`` (``fashion-mnist``, ``cifar10``,
  ``cifar100``, ``imagefolder:<root>``), ``default_data_root``, ``read_image_folder``,
  ``cached_image_folder``, ``resize_images``.
- ``device_data``: ``DeviceLoader``, batches drawn on the device.
- ``models``: the ``MODELS`` registry, ``ModelSpec``, ``build_model``, ``backbone``, ``BasicBlock``.
- ``pipeline``: the protocol: ``TrainRecipe``, ``Splits``/``make_splits``, ``loader``,
  ``train_model``, ``unlearn_model``, ``EvalOptions``/``eval_options``, ``evaluate_model``,
  ``outputs_on``, ``model_spec``, ``build_checked``, ``EVAL_BATCH``.
- ``checkpoints``: ``save_model``, ``load_model`` (weights plus model spec) and ``import_model``.
- ``preprocess``: ``Preprocess`` (image size, channels, normalisation) and its CLI options.
- ``recipe_args``: CLI options of the model and recipe, ``parse_method_overrides``.
- ``report``: ``markdown_table``, ``column_stats``, ``mean_std_cells``, ``pyplot``, ``save_figure``.
- ``reference``: the papers' SVD and DELETE procedures written plainly, the speed benchmarks' yardstick.
- ``speed``: measuring the SVD step (ours against the reference, each in a fresh process) for any
  task's speed benchmark.
- ``tuning``: the settings grid and validation-only choice rule of the tuning scripts.
- ``image_folder``: a seeded sample of a registered dataset written as an image folder
  (``benchmarks/make_image_folder.py``).
"""

__version__ = "0.1.0"
