"""DES file names and bits, FITS reading and writing, filesystems: what the pipeline reads, with no
pipeline logic."""
