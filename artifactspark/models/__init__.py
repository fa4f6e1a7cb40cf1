"""Training the classifiers on the feature store: splits, training data, the CNN and the SVM,
thresholds, model directories."""
