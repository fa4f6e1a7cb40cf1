"""artifactspark: find image artifacts in DES single-CCD exposures at archive scale."""

__version__ = "0.1.0"
