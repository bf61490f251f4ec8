"""Running untrusted code: the OS-level sandbox (bubblewrap, else an audit-hook runner), one process step
with its limits, the languages it runs, and one generated example with its tests. Used by generation
(repair rounds), the dataset checks and evaluation."""
