"""The Dataset page's parts: semantic checks, judge calibration, versions, the Hub push."""
