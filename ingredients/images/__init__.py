"""The image-folder task: classification of images stored as PNG or JPEG files, one sub-folder per class."""
