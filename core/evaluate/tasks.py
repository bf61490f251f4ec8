"""Where an evaluation samples from, and an evaluation as a background task (the Evaluate page)."""
from __future__ import annotations

from core.background import TaskContext, TaskKind, start_task
from core.config import Profile
from core.errors import ShoalError
from core.evaluate.runner import EvalSpec, run_eval
from core.llm.concurrency import job_concurrency
from core.llm.profiles import load_profiles
from core.store import Store

EVALUATION = TaskKind("evaluation", "An evaluation",
                      cancelled="Evaluation cancelled: the samples done are kept; start it again to resume.")


def target_profile(base_url: str | None = None, model: str | None = None, api_key_env: str | None = None,
                   start_local: bool = True) -> Profile:
    """The endpoint to evaluate: `base_url` (+ `model`, the key from `api_key_env`) when given, else
    the configured generator profile (the embedded model when none is configured), with `model`
    instead of its own if given."""
    if base_url:
        fields: dict = {"role": "generator", "base_url": base_url, "model": model or "", "timeout_s": 600.0}
        if api_key_env:
            fields["api_key_env"] = api_key_env
        try:
            return Profile(**fields)
        except ValueError as exc:
            raise ShoalError(f"Invalid endpoint: {exc}") from None
    profile = load_profiles(start_local=start_local)["generator"]
    if not profile.base_url:
        raise ShoalError("No endpoint: pass --base-url and --model, configure the generator "
                         "(SHOAL_GENERATOR_BASE_URL), or start the local model (`shoal llm serve`).")
    return profile.model_copy(update={"model": model}) if model else profile


def concurrency_for(profile: Profile, asked: int | None = None) -> int:
    """Requests in flight: as a generation job on this endpoint (1 on the embedded model)."""
    return job_concurrency({"generator": profile}, asked)


def start_evaluation(store: Store, spec: EvalSpec, base_url: str | None = None, model: str | None = None):
    """`run_eval` in a worker thread (core.background): leaving the page does not stop it; a cancel
    stops at the next sample, and starting the same evaluation again resumes it."""
    def work(ctx: TaskContext) -> dict:
        ctx.stage("starting the model" if not base_url else "sampling")
        profile = target_profile(base_url, model, start_local=True)
        spec.concurrency = concurrency_for(profile, spec.concurrency)
        ctx.stage("sampling and executing")
        out = run_eval(store, spec, profile, progress=ctx.progress, cancel=ctx.cancel)
        ci = out["pass_at_1_ci"] or [0.0, 0.0]
        out["summary"] = (f"Run #{out['run_id']}: pass@1 {out['pass_at_1']:.1%} "
                          f"(95% interval {ci[0]:.1%}-{ci[1]:.1%}) on {out['n_problems']} problems.")
        return out

    label = f"{spec.benchmark}{'' if not spec.limit else f' ×{spec.limit}'} · {model or 'configured model'}"
    return start_task(store, EVALUATION, work, label=label, describe=lambda result: result)
