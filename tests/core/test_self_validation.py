"""Self-validating generation end to end: the generator writes tests with its solution, the job runs
both in the sandbox, a failing example gets one repair round, the judge is told the result, and the
export keeps exactly the examples whose tests pass (Python and JavaScript)."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.config import Profile
from core.dataset.checks.results import current_checks, set_override
from core.dataset.export import export_dataset, select_rows
from core.generate.jobs import create_job, run_job
from core.sandbox.languages import available_languages
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder

N_PER_LANGUAGE = 10
# snippet index % 10 -> what the scripted generator does
ALWAYS_WRONG = {0, 3, 7}        # wrong solution, and wrong again in the repair round
FIXED_ON_REPAIR = {1, 5}        # wrong solution, right after seeing the failure
_NAME = re.compile(r"\b(?:def|function)\s+(scale_(\d+))\b")


def _bucket(i: int) -> str:
    return "wrong" if i % 10 in ALWAYS_WRONG else "fixed" if i % 10 in FIXED_ON_REPAIR else "right"


def _code(language: str, name: str, i: int, wrong: bool) -> tuple[str, str]:
    """(solution, tests): the tests catch the off-by-one the wrong solution has."""
    k = i + 2 + (1 if wrong else 0)
    if language == "python":
        return (f"def {name}(x):\n    return x * {k}\n",
                f"assert {name}(0) == 0\nassert {name}(3) == {3 * (i + 2)}\n")
    return (f"function {name}(x) {{\n  return x * {k};\n}}\n",
            f"assert.strictEqual({name}(0), 0);\nassert.strictEqual({name}(3), {3 * (i + 2)});\n")


class ScriptedTeacher:
    """Generator replies with solution + tests (wrong for a known share); the judge passes everything
    and records the execution line it was shown."""

    def __init__(self):
        self.repair_prompts: list[str] = []
        self.execution_lines: list[str] = []

    def __call__(self, body: dict) -> str:
        msgs = body.get("messages") or []
        prompt = "\n".join(m.get("content") or "" for m in msgs if m.get("role") == "user")
        if "## Example to judge" in prompt:
            m = re.search(r"^## Execution\n(.+)$", prompt, re.M)
            self.execution_lines.append(m.group(1) if m else "")
            return _judge_all_yes(body)
        task = re.search(r"^Task: (\w+)", prompt, re.M).group(1)
        language = "python" if "## Input code (python)" in prompt else "javascript"
        name, i = _NAME.search(prompt[prompt.find("## Input code"):]).groups()
        i = int(i)
        repair = msgs[-1].get("role") == "user" and "was run in a sandbox" in msgs[-1]["content"]
        if repair:
            self.repair_prompts.append(msgs[-1]["content"])
        wrong = _bucket(i) == "wrong" or (_bucket(i) == "fixed" and not repair)
        solution, tests = _code(language, name, i, wrong)
        lang = "Python" if language == "python" else "JavaScript"
        if task == "oss_instruct":
            return json.dumps({"problem": f"Write a {lang} function `{name}(x)` that multiplies x by {i + 2}.",
                               "solution": f"```{language}\n{solution}```\n\nIt multiplies.", "tests": tests})
        return json.dumps({"task_name": f"Scale by {i + 2}",
                           "instruction": f"Write a {lang} function `{name}` that multiplies its argument by {i + 2}.",
                           "information": "no input", "solution": solution, "tests": tests})


def _judge_all_yes(body: dict) -> str:
    """One reason + "yes" per rule (the examples' correctness is the sandbox's to decide here)."""
    reply = json.loads(shoal_responder(body))
    for r in reply["rules"]:
        r["answer"] = "yes"
    reply["overall"] = "yes"
    return json.dumps(reply)


def _add_snippets(store, language: str) -> dict[str, int]:
    out = {}
    for i in range(N_PER_LANGUAGE):
        name = f"scale_{i}"
        code = (f"def {name}(x):\n    \"\"\"Multiply x by {i + 2}.\"\"\"\n    return x * {i + 2}\n" if language == "python"
                else f"function {name}(x) {{\n  // Multiply x by {i + 2}.\n  return x * {i + 2};\n}}\n")
        sid = f"{language[:2]}{i:03d}"
        store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars, func_name) "
                      "VALUES (?, 'function', 'test', 'dir', ?, ?, ?, ?)", [sid, language, code, len(code), name])
        out[sid] = i
    return out


@pytest.fixture
def generated(store):
    if available_languages()["javascript"]:
        pytest.skip(available_languages()["javascript"])
    index = {**_add_snippets(store, "python"), **_add_snippets(store, "javascript")}
    teacher = ScriptedTeacher()
    with FakeOpenAIServer(teacher) as srv:
        prof = {role: Profile(role=role, base_url=srv.base_url, model="fake-model", timeout_s=20, max_tokens=512)
                for role in ("generator", "judge")}
        for task in ("code_generation", "oss_instruct"):
            job = create_job(store, list(index), profiles=prof, task=task, concurrency=4)
            summary = run_job(store, job)
            assert summary["status"] == "done" and summary["items"]["succeeded"] == len(index), summary
        n_requests = len(srv.requests)
    return index, teacher, n_requests


def _expected(index: dict[str, int], bucket: str) -> set[str]:
    return {sid for sid, i in index.items() if _bucket(i) == bucket}


def test_export_keeps_exactly_the_examples_whose_tests_pass(store, generated, tmp_path):
    index, teacher, n_requests = generated
    n_items = 2 * len(index)
    n_failing_first = sum(1 for i in index.values() if _bucket(i) != "right") * 2
    # one generator call + one judge call per item, plus one repair call per example that failed first
    assert len(teacher.repair_prompts) == n_failing_first and n_requests == 2 * n_items + n_failing_first
    assert all("AssertionError" in p or "assert" in p.lower() for p in teacher.repair_prompts)

    # every example's run is its current `execution` check, with language and outcome
    cur = current_checks(store, "execution")
    assert len(cur) == n_items
    details = [json.loads(d) for d in cur["detail"]]
    assert Counter(d["language"] for d in details) == {"python": len(index), "javascript": len(index)}
    assert sum(d["repair_rounds"] for d in details) == n_failing_first
    assert sum(bool(d.get("repaired")) for d in details) == 2 * len(_expected(index, "fixed"))
    # the judge saw the result: passed for the right and the repaired, failed for the rest
    lines = Counter(line.split(":")[0] for line in teacher.execution_lines)
    n_wrong = 2 * len(_expected(index, "wrong"))
    assert lines == {"passed": n_items - n_wrong, "failed": n_wrong}

    res = export_dataset(store, "alpaca", tmp_path / "out", include_judged=True)
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    per_task: dict[str, set[str]] = {}
    for r in rows:
        per_task.setdefault(r["provenance"]["task"], set()).add(r["provenance"]["snippet_id"])
        assert r["provenance"]["execution"] == "pass" and r["provenance"]["tests"]
        i = index[r["provenance"]["snippet_id"]]
        assert f"x * {i + 2}" in r["output"]            # the repaired solution is the one exported
    keep = _expected(index, "right") | _expected(index, "fixed")
    assert per_task == {"code_generation": keep, "oss_instruct": keep}
    assert res.excluded == {"failed check: execution": n_wrong}
    for language in ("python", "javascript"):
        assert {sid for sid in keep if sid.startswith(language[:2])}, language   # both languages are covered

    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Execution pass rates" in card
    share = (N_PER_LANGUAGE - len(ALWAYS_WRONG)) / N_PER_LANGUAGE
    for task in ("code_generation", "oss_instruct"):
        for language in ("python", "javascript"):
            assert re.search(rf"\| {task} \| {language} \| {N_PER_LANGUAGE} \| {int(share * N_PER_LANGUAGE)} \| "
                             rf"{len(ALWAYS_WRONG)} \| 0 \| {len(FIXED_ON_REPAIR)} \| {share:.1%} \|", card), card
    assert f"left out for failing: {n_wrong}" in card


def test_failing_examples_leave_only_when_the_user_says_so(store, generated, tmp_path):
    index, _, _ = generated
    n_items = 2 * len(index)
    everything = select_rows(store, include_judged=True, include_failed_execution=True)
    assert len(everything.rows) == n_items and everything.n_failed_execution_included == 2 * len(_expected(index, "wrong"))
    assert Counter(r["provenance"]["execution"] for r in everything.rows)["fail"] == 2 * len(_expected(index, "wrong"))
    # a reviewer's override lets one failing example through the default export
    failing = [int(g) for g, p in zip(*[current_checks(store, "execution")[c] for c in ("generation_id", "passed")])
               if not p]
    set_override(store, failing[0], "execution", True, actor="dana")
    assert failing[0] in {r["provenance"]["generation_id"] for r in select_rows(store, include_judged=True).rows}
    # the CLI flag
    db = store.path
    store.checkpoint()
    store.close()
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["--db", str(db), "export", "--format", "alpaca", "--out", str(out), "--json",
                                   "--include-judged", "--include-failed-execution"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_rows"] == n_items


# --------------------------------------------------------------------------- the parts, one by one

def test_the_three_tested_tasks_ask_for_tests_but_a_reply_without_them_still_parses():
    from core.tasks import TASKS, get_task
    tested = {name for name, spec in TASKS.items() if spec.tests_key}
    assert tested == {"code_generation", "code_repair", "oss_instruct"}
    for name in tested:
        spec = get_task(name)
        assert "tests" in spec.schema.model_json_schema()["required"] and "tests" not in spec.required_keys
        fields = {k: "x" for k in spec.required_keys}
        assert spec.schema.model_validate(fields).tests == ""
        assert spec.prefilter(fields).ok or not any(r.startswith(("missing_fields", "empty_fields"))
                                                    for r in spec.prefilter(fields).reasons)
        assert spec.display_language("tests", "assert f(1) == 2", "python", None) == "python"
        assert spec.export_row({**fields, "tests": "assert True"})["tests"] == "assert True"
        content = spec.default_content()
        prompt = spec.generator_messages(content, {"language": "python", "code": "def f(): pass\n"}, None, [], [])
        assert "## Tests" in prompt[1]["content"] and "tests" in " ".join(content["requirements"])
    assert "tests" not in get_task("code_summarization").keys


@pytest.mark.parametrize("task", ["code_generation", "code_repair", "oss_instruct"])
def test_the_built_in_good_examples_pass_their_own_tests(task):
    from core.sandbox.example import execute_example
    from core.tasks import get_task
    for example in get_task(task).good_examples:
        r = execute_example("python", example, example["solution"])
        assert r.status == "ok", (task, r.stderr)
        broken = {**example, "solution": example["solution"].replace("return", "return None and", 1)}
        assert execute_example("python", broken, broken["solution"]).outcome == "fail"


def test_the_judge_is_told_the_execution_result_even_with_an_older_template():
    from core.tasks import get_task
    spec = get_task("code_generation")
    content = spec.default_content()
    snippet = {"language": "python", "code": "def f(): pass\n"}
    fields = {k: "x" for k in spec.keys}
    line = "failed: the solution did not pass its tests (error) (python); last output: AssertionError"
    user = spec.judge_messages(content, snippet, None, fields, line)[1]["content"]
    assert f"## Execution\n{line}" in user
    assert "## Execution" not in spec.judge_messages(content, snippet, None, fields)[1]["content"]
    old = {**content, "judge_template": content["judge_template"].replace(
        "{% if execution %}\n## Execution\n{{ execution }}\n{% endif %}", "")}
    assert "execution" not in old["judge_template"]
    assert f"Execution: {line}" in spec.judge_messages(old, snippet, None, fields, line)[1]["content"]
    repair = spec.repair_messages([{"role": "user", "content": "p"}], "{}", "error while running: boom")
    assert [m["role"] for m in repair] == ["user", "assistant", "user"] and "boom" in repair[-1]["content"]


def test_python_test_functions_run_and_their_failures_count():
    from core.sandbox.languages import run_solution
    assert run_solution("python", "def f():\n    return 1\n", "def test_f():\n    assert f() == 1\n").status == "ok"
    r = run_solution("python", "def f():\n    return 1\n", "def test_f():\n    assert f() == 2, 'f is wrong'\n")
    assert r.outcome == "fail" and "f is wrong" in r.stderr


@pytest.mark.parametrize("language,solution,tests", [
    ("cpp", "#include <cstdio>\nint twice(int x) { return 2 * x; }\nint main() { std::puts(\"demo\"); return 0; }\n",
     "int main() { assert(twice(4) == 8); return 0; }\n"),
    ("rust", "fn twice(x: i32) -> i32 { 2 * x }\nfn main() { println!(\"demo\"); }\n",
     "fn main() { assert_eq!(twice(4), 8); }\n"),
    ("java", "public class Twice {\n    public static int of(int x) { return 2 * x; }\n"
             "    public static void main(String[] a) { System.out.println(\"demo\"); }\n}\n",
     "import java.util.List;\npublic class TwiceTest {\n    public static void main(String[] a) {\n"
     "        assert Twice.of(4) == List.of(8).get(0);\n    }\n}\n"),
])
def test_a_solution_with_its_own_main_is_run_by_the_tests_main(language, solution, tests):
    from core.sandbox.languages import run_solution
    if available_languages()[language]:
        pytest.skip(available_languages()[language])
    r = run_solution(language, solution, tests, timeout=20)
    assert r.status == "ok" and "demo" not in r.stdout, (r.status, r.stderr)
    r = run_solution(language, solution, tests.replace("8", "9"), timeout=20)
    assert r.outcome == "fail", (r.status, r.stderr)
