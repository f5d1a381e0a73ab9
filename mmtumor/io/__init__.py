"""File input/output: NIfTI (affine-safe), DICOM series, BraTS-layout datasets."""
