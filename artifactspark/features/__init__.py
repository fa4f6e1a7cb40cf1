"""From a DES archive to the feature store: per-CCD image steps, exposure-checker labels, the store
and its schema, the preprocess pipeline."""
