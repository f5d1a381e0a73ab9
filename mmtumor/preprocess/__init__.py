from .spatial import PreprocessResult, is_brats_preprocessed, preprocess_case, to_native  # noqa: F401
from .normalize import normalize_intensity, brain_mask_from_image  # noqa: F401
