"""Evaluate a model on code benchmarks: pass@k by executing every sample in the sandbox.

`problems` (HumanEval, MBPP from a file, the held-out split of the user's own set), `sampling`
(Shoal's LLM client for plain-text samples, cached per sample), `runner` (sample, execute, record;
resumable), `runs` (the DuckDB tables of migration 022 and the figures read from them), `stats`
(pass@k, bootstrap intervals, McNemar), `compare` (two runs on the same problems), `tasks` (a run as a
background task for the Evaluate page).
"""
from __future__ import annotations

from core.evaluate.compare import compare_runs
from core.evaluate.problems import BENCHMARKS, Problem, build_program, held_out_ids, load_problems, parse_benchmark
from core.evaluate.runner import EvalSpec, report_of, run_eval
from core.evaluate.runs import get_run, list_runs, problem_results, run_metrics
from core.evaluate.stats import bootstrap_ci, mcnemar_exact, pass_at_k

__all__ = ["BENCHMARKS", "EvalSpec", "Problem", "bootstrap_ci", "build_program", "compare_runs", "get_run",
           "held_out_ids", "list_runs", "load_problems", "mcnemar_exact", "parse_benchmark", "pass_at_k",
           "problem_results", "report_of", "run_eval", "run_metrics"]
