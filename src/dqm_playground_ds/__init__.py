"""dqm-playground-ds: per-lumisection DQM histograms to anomaly verdicts for the CMS ML4DQM playground."""

__version__ = "0.1.0"
