"""The dataset stage: checks (decontamination, duplicates, execution), judge calibration, export, versions and the Hub push."""
