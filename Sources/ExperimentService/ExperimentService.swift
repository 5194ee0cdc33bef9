// ExperimentService (issue 4).
