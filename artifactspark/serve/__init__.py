"""Using trained models on the store: batch inference, the scheduled re-scan, and queries over the
store and the predictions."""
